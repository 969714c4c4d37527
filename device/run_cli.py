"""`spine run`: the daemon on the real sound card, logging every event and decision."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `run` to the top-level `spine` parser."""
    run = subparsers.add_parser(
        "run", help="run the assistant on the real sound card (until Ctrl-C or SIGTERM)",
        description="Run the daemon on the configured microphone and speaker (`[audio] input_device` and "
        "`output_device`; `spine devices` lists them, `spine doctor` checks them). Every event and decision "
        "goes to a JSON-lines log that `spine replay` reads.",
    )  # fmt: skip
    run.add_argument("--config", type=Path, help="configuration TOML (default: built-in defaults)")
    run.add_argument(
        "--log", type=Path, help="event log path (default: $STATE_DIRECTORY or ~/.local/state/spine, one per run)"
    )
    run.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from device.config import load_config

    config = load_config(args.config)
    from device.runtime.card import run

    log = args.log or _default_log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    return run(config, log)


def _default_log_path() -> Path:
    """A new log per run under $STATE_DIRECTORY (systemd) or ~/.local/state/spine: no run overwrites another."""
    import os

    state = os.environ.get("STATE_DIRECTORY") or os.path.expanduser("~/.local/state/spine")
    return Path(state) / time.strftime("events-%Y%m%d-%H%M%S.jsonl")
