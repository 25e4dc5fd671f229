"""`private_files`: the process's umask with 077 added while any thread is inside, the one it had
once the last thread leaves, however their stays overlap."""

import os
import threading

from analytics_assets.warehouse.destinations import private_files


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_overlapping_threads_keep_files_private_until_the_last_leaves(tmp_path):
    previous = os.umask(0o002)
    try:
        first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
        seen: dict[str, int] = {}

        def first() -> None:
            with private_files():
                first_in.set()
                second_in.wait(5)
            first_out.set()

        def second() -> None:
            first_in.wait(5)
            with private_files():
                second_in.set()
                first_out.wait(5)
                seen["after the first left"] = current_umask()
                (tmp_path / "made").write_text("rows")
            seen["after both left"] = current_umask()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert seen == {"after the first left": 0o077, "after both left": 0o002}
        assert oct((tmp_path / "made").stat().st_mode & 0o777) == oct(0o600)
    finally:
        os.umask(previous)


def test_a_stricter_umask_stays_stricter_inside():
    previous = os.umask(0o277)
    try:
        with private_files():
            assert current_umask() == 0o277
        assert current_umask() == 0o277
    finally:
        os.umask(previous)
