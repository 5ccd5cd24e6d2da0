"""The scoring version: what the rows of an episode were computed by, beside its inputs and
models. It is part of every episode's fingerprint, so that rows scored by older code are scored
again by the next run instead of being kept for ever.

The code that decides the rows is the modules in `SCORING_MODULES`. Their hash (of the parsed
code: comments, docstrings and layout do not count) is recorded here with the version, and a test
holds the two together: a change to those modules fails it until the hash is recorded again, and
whoever records it bumps `SCORING_VERSION` if the change moves any output (values, segments,
events, columns).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from ser_pipeline import __version__

SCORING_VERSION = 11
SCORING_MODULES = (
    "archive", "audio", "architectures", "devices", "diarization", "embedded_diarization", "episode_steps", "features", "gillick",
    "hf_emotion", "inference", "laughter", "model_loading", "pipeline", "registry", "schema", "segmentation",
    "transcripts", "wav2vec2_dims", "whisper_emotion", "whisper_encoder", "voice_encoder", "voice_activity",
)  # fmt: skip
RECORDED_SOURCE_SHA256 = "7af0e02b9c493a811c53ed021dd54a0d98f00b3340c3260d2fef0fd2809f9fde"

PIPELINE_VERSION = f"{__version__}+scoring.{SCORING_VERSION}"  # the `pipeline_version` of the rows


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


def scoring_source_sha256() -> str:
    """The hash of the scoring modules' code as parsed (comments, docstrings and layout aside)."""
    digest = hashlib.sha256()
    for name in SCORING_MODULES:
        source = (Path(__file__).parent / f"{name}.py").read_text()
        digest.update(name.encode())
        digest.update(ast.dump(_without_docstrings(ast.parse(source))).encode())
    return digest.hexdigest()
