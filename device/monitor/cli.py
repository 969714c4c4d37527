"""`spine monitor-url`: the sign-in URL of the monitoring page (with the token after `#`, which the browser
keeps to itself and trades for a cookie)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `monitor-url` to the top-level `spine` parser."""
    url = subparsers.add_parser(
        "monitor-url", help="print the monitoring page's sign-in URL (creates the tokens if missing)",
        description="Print the URL that opens the monitor of `spine run` ([monitor] enabled = true) or of "
        "`spine demo --clock wall --monitor`. The read-only URL shows everything; the admin URL may also "
        "control (typed utterance, mute, barge-in) when [monitor] allow_control = true. Treat both as passwords.",
    )  # fmt: skip
    url.add_argument("--config", type=Path, help="configuration TOML (default: built-in defaults)")
    url.add_argument("--admin", action="store_true", help="the admin URL instead of the read-only one")
    url.add_argument("--port", type=int, help="the port the monitor printed at start (with [monitor] port = 0)")
    url.set_defaults(func=_cmd_monitor_url)


def _cmd_monitor_url(args: argparse.Namespace) -> int:
    from device.config import load_config
    from device.monitor.token import load_or_create_tokens, state_dir_path

    monitor = load_config(args.config).monitor
    tokens = load_or_create_tokens(state_dir_path(monitor.state_dir))
    token = tokens.admin if args.admin else tokens.read_only
    print(sign_in_url(monitor.bind_address, args.port or monitor.port, token))
    return 0


def sign_in_url(bind_address: str, port: int, token: str) -> str:
    host = socket.gethostname() if bind_address in ("0.0.0.0", "::") else bind_address
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/login#{token}"
