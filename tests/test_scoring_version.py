"""The scoring version follows the scoring code: rows scored by older code are scored again."""

from __future__ import annotations

from ser_pipeline import scoring_version
from ser_pipeline.scoring_version import RECORDED_SOURCE_SHA256, SCORING_VERSION, scoring_source_sha256


def test_the_scoring_code_is_the_one_its_version_was_recorded_for():
    assert scoring_source_sha256() == RECORDED_SOURCE_SHA256, (
        "the scoring modules changed: if any output (values, segments, events, columns) can change, bump "
        f"SCORING_VERSION (now {SCORING_VERSION}) in ser_pipeline/scoring_version.py; either way set "
        f"RECORDED_SOURCE_SHA256 = {scoring_source_sha256()!r}"
    )


def test_the_hash_ignores_comments_and_docstrings_but_not_code(tmp_path, monkeypatch):
    source = '"""Module."""\n\ndef f(x):\n    """Doc."""\n    return x + 1  # one\n'
    variants = {
        "same": source,
        "commented": source.replace("# one", "# two").replace('"""Doc."""', '"""Other doc."""'),
        "changed": source.replace("x + 1", "x + 2"),
    }
    hashes = {}
    for name, text in variants.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "m.py").write_text(text)
        (folder / "scoring_version.py").write_text("")
        monkeypatch.setattr(scoring_version, "__file__", str(folder / "scoring_version.py"))
        monkeypatch.setattr(scoring_version, "SCORING_MODULES", ("m",))
        hashes[name] = scoring_source_sha256()
    assert hashes["same"] == hashes["commented"] != hashes["changed"]
