"""`leader_of` finds a container's init, whatever its children are doing.

It used to take "a grandchild of nspawn", which is one of init's children once nspawn's outer child has exited.
On a loaded machine that was a boot job that then exited, and every later command of the booted-container tests
entered a process that had gone. Here a real systemd-nspawn runs a shell as the container's PID 1 with two
children of its own (no boot: about a second).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container_tree import (
    POWER_OFF_WITH_US,
    cached_service_tree,
    leader_of,
    pids_with_parent,
    wait_for,
    why_not_runnable,
)


@pytest.fixture
def shell_container() -> Iterator[subprocess.Popen[bytes]]:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    tree = cached_service_tree()
    command = ["systemd-nspawn", "-D", str(tree), "--register=no", "--keep-unit", "--private-network", "--read-only"]
    command += ["-q", "/bin/sh", "-c", "sleep 60 & sleep 60 & wait"]
    process = subprocess.Popen(POWER_OFF_WITH_US + command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def namespace_pids(pid: int) -> list[str]:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))


def test_the_leader_is_the_containers_pid_1_not_one_of_its_children(
    shell_container: subprocess.Popen[bytes],
) -> None:
    def both_sleeps_started() -> bool:
        leader = leader_of(shell_container.pid)
        return leader is not None and len(pids_with_parent(leader)) == 2

    wait_for(both_sleeps_started, 60, "the container's shell and its two sleeps")
    leader = leader_of(shell_container.pid)
    assert leader is not None
    assert namespace_pids(leader)[-1] == "1"
    inside = subprocess.run(
        ["nsenter", "-t", str(leader), "-a", "cat", "/proc/1/cmdline"], capture_output=True, text=True, check=True
    )
    assert inside.stdout.split("\0")[:2] == ["/bin/sh", "-c"]
    for child in pids_with_parent(leader):  # what the old rule could pick: in the container, but not its init
        assert namespace_pids(child)[-1] != "1"
