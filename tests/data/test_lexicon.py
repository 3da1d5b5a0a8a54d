from pathlib import Path

import pytest

from asr_kd.data.lexicon import PHONES, SPOKEN_NOISE, cmudict_lexicon, oov_report, read_lexicon
from asr_kd.utils.errors import AsrKdError


def test_cmudict_has_no_stress_and_39_phones() -> None:
    lex = cmudict_lexicon(["READ", "HELLO"])
    assert set(lex.words()) == {"READ", "HELLO"}
    assert ("R", "EH", "D") in lex.lookup("READ") and ("R", "IY", "D") in lex.lookup("READ")
    assert len(PHONES) == 41 and PHONES[:2] == ("SIL", SPOKEN_NOISE)


def test_librispeech_format_lexicon(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.txt"
    path.write_text("A\tAH0\nA\tEY1\nABBOT\tAE1 B AH0 T\nABBOT AE1 B AH0 T\n")
    lex = read_lexicon(path)
    assert lex.lookup("A") == [("AH",), ("EY",)]
    assert lex.lookup("ABBOT") == [("AE", "B", "AH", "T")]


def test_lexicon_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("HELLO HH AH0 L OW1\nWORLD W ER1 L DX\n")
    with pytest.raises(AsrKdError, match=r"bad.txt:2: unknown phone 'DX'"):
        read_lexicon(path)
    path.write_text("LONELY\n")
    with pytest.raises(AsrKdError, match="no pronunciation"):
        read_lexicon(path)
    with pytest.raises(AsrKdError, match="missing"):
        read_lexicon(tmp_path / "absent.txt")


def test_oov_policy_possessive_then_spoken_noise() -> None:
    lex = cmudict_lexicon(["JAMES", "DOG", "CAT"])
    assert lex.lookup("DOG'S") == [("D", "AO", "G", "Z")]
    assert lex.lookup("CAT'S") == [("K", "AE", "T", "S")]
    assert lex.lookup("JAMES'S") == [("JH", "EY", "M", "Z", "IH", "Z")]
    assert lex.lookup("RONICKY") == [(SPOKEN_NOISE,)]
    report = oov_report(["DOG'S DOG RONICKY", "CAT"], lex)
    assert (report.tokens, report.oov_tokens, report.spn_tokens) == (4, 2, 1)
    assert report.token_rate == pytest.approx(0.5) and report.types == 4 and report.oov_types == 2
