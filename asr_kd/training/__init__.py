"""Stage 5, training: frame-level acoustic model training and ensembles.

Modules (imported explicitly so that ``asr-kd --help`` does not load torch):

* :mod:`~asr_kd.training.config`: ``ExperimentConfig`` and ``load_config(yaml, overrides)``.
* :mod:`~asr_kd.training.trainer`: ``run(config, make_objective=None, resume=False)``.
* :mod:`~asr_kd.training.objectives`: the ``Objective`` protocol and ``CrossEntropyObjective``.
* :mod:`~asr_kd.training.batches`, :mod:`~asr_kd.training.stream_batches`: minibatches from the
  in-memory ``FrameTable`` (``data.loader=memory``) or a ``FrameStream`` (``data.loader=stream``).
* :mod:`~asr_kd.training.ensemble`: ``train_ensemble(config, num_members, ...)``.
"""
