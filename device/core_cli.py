"""`spine replay` and `spine fsm`: the pure state machine, re-run over an event log, or drawn and checked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `replay` and `fsm` to the top-level `spine` parser."""
    replay = subparsers.add_parser(
        "replay", help="re-run the state machine over an event log and check it decides the same",
        description="Re-run the pure core over LOG, print a readable timeline, and exit 1 if any recomputed "
        "state or command differs from the recorded one, or if a record's running checksum does not match (the "
        "log was edited after it was written). Logs written before the checksum (spine_log 1) are replayed with "
        "a note that their events are not checked. A malformed log is a one-line error at FILE:LINE, exit 2.",
    )  # fmt: skip
    replay.add_argument("log", type=Path, metavar="LOG", help="an events.jsonl written by `spine demo`")
    replay.add_argument("--quiet", action="store_true", help="print only the verdict")
    replay.set_defaults(func=_cmd_replay)

    fsm = subparsers.add_parser("fsm", help="print the state machine as a Mermaid diagram, or check it")
    fsm.add_argument(
        "--check", action="store_true",
        help="verify every (state, trigger) pair (an event, or a timer kind) is handled or ignored with a reason, "
        "and every state is reachable",
    )  # fmt: skip
    fsm.set_defaults(func=_cmd_fsm)


def _cmd_replay(args: argparse.Namespace) -> int:
    from device.replay import EDITED, NOT_CHAINED, replay_checked
    from device.timeline import lines

    checked = replay_checked(args.log)
    if not args.quiet:
        for line in lines(checked.steps):
            print(line)
    for mismatch in checked.mismatches[:10]:
        print(f"{args.log}:{mismatch.line}: recorded {mismatch.recorded}\n    recomputed {mismatch.recomputed}")
    for edited_line in checked.edited[:10]:
        print(f"{args.log}:{edited_line}: {EDITED}")
    if not checked.chained:
        print(f"replay: {NOT_CHAINED}", file=sys.stderr)
    edited = f", {len(checked.edited)} edited" if checked.chained else ""
    verdict = "reproduced" if checked.reproduced else "differs"
    print(
        f"replay: {len(checked.steps)} steps, {len(checked.mismatches)} differing{edited}: {verdict}", file=sys.stderr
    )
    return 0 if checked.reproduced else 1


def _cmd_fsm(args: argparse.Namespace) -> int:
    from device.core import chart

    if not args.check:
        print(chart.mermaid(), end="")
        return 0
    report = chart.check()
    for name in report.unclassified:
        print(f"unclassified pair (neither handled nor ignored with a reason): {name}")
    for name in report.classified_twice:
        print(f"pair in more than one table: {name}")
    for name in report.unreachable:
        print(f"unreachable state: {name}")
    if report.ok:
        print("fsm: every (state, event) pair is classified and every state is reachable")
    return 0 if report.ok else 1
