"""The one exception type that means "the user gave us bad input".

The CLI prints an :class:`AsrKdError` as a single line (no traceback) and exits with status 2;
any other exception is a bug and keeps its traceback.
"""


class AsrKdError(Exception):
    """Bad input, named precisely: the message says which file/utterance and what is wrong."""
