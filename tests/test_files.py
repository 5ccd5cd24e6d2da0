"""The file helpers every writer shares: atomic replacement and an exclusive lock."""

from __future__ import annotations

import threading
import time

import pytest

from ser_pipeline.files import atomic_write, exclusive_lock


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
