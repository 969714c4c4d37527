"""The `spine` command line. Each command group's module registers its commands (`register(subparsers)`) with
their handlers; a handler imports what it drives when it runs, so `spine --help` stays quick. Errors a user can
fix are one line."""

from __future__ import annotations

import argparse
import sys

from device import __version__, config_cli, core_cli, run_cli
from device.audio import cli as audio_cli
from device.bench import cli as bench_cli
from device.entry import restore_default_signals
from device.errors import UserError
from device.flash import cli as flash_cli
from device.models import cli as models_cli
from device.monitor import cli as monitor_cli
from device.sim import cli as demo_cli
from device.testing import fake_llm_cli, realtime_peer_cli

COMMAND_GROUPS = (
    demo_cli, run_cli, monitor_cli, bench_cli, core_cli, fake_llm_cli, realtime_peer_cli, models_cli, audio_cli,
    config_cli, flash_cli,
)  # fmt: skip
"""In the order `spine --help` lists their commands."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spine",
        description="Spine: an on-device voice assistant that can be interrupted at any moment.",
        epilog="Start with `spine models fetch`, then `spine demo`. Each command has its own --help.",
    )
    parser.add_argument("--version", action="version", version=f"spine {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "handles_signals", False):
        restore_default_signals()  # `spine run` replaces the entry point's early handlers itself, first thing
    try:
        code: int = args.func(args)
    except UserError as error:
        print(f"spine: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
