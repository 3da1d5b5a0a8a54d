"""Phonetic questions the decision tree may ask about a triphone's left or right context.

A question is a named set of context symbols: ARPAbet phones, the silence phones and
:data:`EDGE` (no phone: the utterance starts or ends there). The hand-written classes follow
HTK's ``tree.hed`` question lists for English (manner, place, voicing, vowel height/backness);
singleton questions for every symbol let the tree isolate a frequent context on its own.
"""

from __future__ import annotations

from asr_kd.data.lexicon import PHONES

#: Context symbol for "no phone here" (``None`` in :meth:`SenoneTree.senone`).
EDGE = "<edge>"
#: Every value a left/right context can take; index = context id.
CONTEXTS = (*PHONES, EDGE)

_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
_CLASSES: dict[str, tuple[str, ...]] = {
    "SILENCE_OR_EDGE": ("SIL", "SPN", EDGE),
    "VOWEL": _VOWELS,
    "CONSONANT": tuple(p for p in PHONES[2:] if p not in _VOWELS),
    "FRONT_VOWEL": ("IY", "IH", "EH", "EY", "AE"),
    "CENTRAL_VOWEL": ("AH", "ER"),
    "BACK_VOWEL": ("UW", "UH", "OW", "AO", "AA"),
    "DIPHTHONG": ("AY", "AW", "OY", "EY", "OW"),
    "HIGH_VOWEL": ("IY", "IH", "UW", "UH"),
    "LOW_VOWEL": ("AE", "AA", "AO", "AW", "AY"),
    "ROUNDED": ("UW", "UH", "OW", "AO", "OY", "W"),
    "STOP": ("B", "D", "G", "P", "T", "K"),
    "VOICED_STOP": ("B", "D", "G"),
    "VOICELESS_STOP": ("P", "T", "K"),
    "AFFRICATE": ("CH", "JH"),
    "FRICATIVE": ("F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH"),
    "VOICED_FRICATIVE": ("V", "DH", "Z", "ZH"),
    "VOICELESS_FRICATIVE": ("F", "TH", "S", "SH", "HH"),
    "SIBILANT": ("S", "Z", "SH", "ZH", "CH", "JH"),
    "NASAL": ("M", "N", "NG"),
    "LIQUID": ("L", "R", "ER"),
    "GLIDE": ("W", "Y"),
    "LABIAL": ("P", "B", "M", "F", "V", "W"),
    "DENTAL": ("TH", "DH"),
    "ALVEOLAR": ("T", "D", "N", "S", "Z", "L"),
    "POST_ALVEOLAR": ("SH", "ZH", "CH", "JH", "R"),
    "VELAR": ("K", "G", "NG"),
    "CORONAL": ("T", "D", "N", "S", "Z", "L", "TH", "DH", "SH", "ZH", "CH", "JH", "R"),
    "VOICED": (*_VOWELS, "B", "D", "G", "V", "DH", "Z", "ZH", "JH", "M", "N", "NG", "L", "R", "W", "Y"),
}


def phonetic_questions() -> dict[str, frozenset[str]]:
    """Question name -> set of context symbols (classes above plus one singleton per symbol)."""
    questions = {name: frozenset(members) for name, members in _CLASSES.items()}
    for symbol in CONTEXTS:
        questions[f"IS_{symbol}"] = frozenset((symbol,))
    unknown = {s for members in questions.values() for s in members} - set(CONTEXTS)
    assert not unknown, f"questions name unknown symbols {unknown}"
    return questions
