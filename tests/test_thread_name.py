"""A thread named for the kernel shows under that name in /proc (what `top -H` and `spine bench` read), cut to
the kernel's 15 bytes."""

from __future__ import annotations

import threading
from pathlib import Path

from device.thread_name import name_this_thread


def test_a_thread_names_itself_for_the_kernel_cut_to_15_bytes() -> None:
    seen: list[str] = []

    def named() -> None:
        name_this_thread("spine-transcription")
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    thread = threading.Thread(target=named)
    thread.start()
    thread.join()
    assert seen == ["spine-transcrip"]
    assert Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip() != "spine-transcrip"
