"""The file helpers every writer shares: atomic replacement and an exclusive lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ser_pipeline.files import atomic_write, exclusive_lock, file_sha256, wheel_file


def test_an_atomic_write_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "deep" / "page.html"
    with atomic_write(target) as temporary:
        temporary.write_text("first")
        assert not target.exists()  # nothing is visible before the block ends
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_write(target) as temporary:
        temporary.write_text("half of the sec")
        raise RuntimeError("the writer died")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["page.html"]  # no temporary left


def test_concurrent_writers_of_one_target_never_mix_their_bytes(tmp_path):
    target = tmp_path / "shared.txt"

    def write(letter: str) -> None:
        for _ in range(20):
            with atomic_write(target) as temporary:
                with temporary.open("w") as handle:
                    for _ in range(50):
                        handle.write(letter * 100)
                        handle.flush()

    threads = [threading.Thread(target=write, args=(letter,)) for letter in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = target.read_text()
    assert len(text) == 5000 and len(set(text)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]


def test_an_exclusive_lock_makes_holders_take_turns(tmp_path):
    lock, inside, most = tmp_path / "x.lock", [], []

    def hold() -> None:
        with exclusive_lock(lock):
            inside.append(1)
            most.append(len(inside))
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == [1] * 6


class Missing(RuntimeError):
    pass


def test_a_wheel_file_is_found_checked_or_refused_in_one_line():
    import json as package  # any installed package: its __init__.py stands for a shipped file

    shipped = file_sha256(Path(package.__file__))
    assert wheel_file("json", "__init__.py", shipped, "json==0", "a test", Missing).name == "__init__.py"
    with pytest.raises(Missing, match=r"is not the file json==0 ships .*pip install --force-reinstall 'json==0'"):
        wheel_file("json", "__init__.py", "0" * 64, "json==0", "a test", Missing)
    with pytest.raises(Missing, match=r"^a test needs nowhere==1: pip install 'nowhere==1'$"):
        wheel_file("no_such_package_here", "x.bin", "0" * 64, "nowhere==1", "a test", Missing)
