"""What the test servers' commands share (`spine fake-llm`, `spine realtime-peer`): the listen address and port
arguments, registering the command, and serving until Ctrl-C.

The servers themselves are device/testing/fake_llm.py and device/testing/realtime_peer.py; their commands are
device/testing/fake_llm_cli.py and device/testing/realtime_peer_cli.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Callable
from typing import Protocol

Serve = Callable[[argparse.Namespace], int]
"""Runs a command from its parsed arguments; returns the exit status."""


class Server(Protocol):
    def start(self) -> str: ...

    def stop(self) -> None: ...


def register_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    serve: Serve,
) -> None:
    """Add the command `name` to the top-level `spine` parser."""
    parser = subparsers.add_parser(
        name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.set_defaults(func=serve)


def standalone_main(
    prog: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    serve: Serve,
    argv: list[str] | None,
) -> int:
    """The command on its own (`python -m ...`): parse `argv` and serve."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))


def add_listen_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """--host and --port."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=port_number,
        default=default_port,
        help=f"port to listen on, 0..65535; 0 picks a free one (default: {default_port})",
    )


def add_key_argument(parser: argparse.ArgumentParser) -> None:
    """`--require-key-env NAME`: the server answers 401 unless a request brings that variable's key."""
    parser.add_argument(
        "--require-key-env",
        metavar="NAME",
        help="require `Authorization: Bearer $NAME` (the key read from this environment variable), else 401",
    )


def required_key(args: argparse.Namespace) -> tuple[bool, str | None]:
    """(usable, key) from `--require-key-env`: no option is (True, None); an unset variable is (False, None),
    said as one line."""
    if not args.require_key_env:
        return True, None
    key = os.environ.get(args.require_key_env)
    if not key:
        print(f"error: --require-key-env: the environment variable {args.require_key_env} is not set")
        return False, None
    return True, key


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0..65535 (0: the system picks a free one)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r} (give 0..65535; 0 picks a free one)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range: give 0..65535 (0 picks a free one)")
    return port


def serve_until_interrupted(
    server: Server, args: argparse.Namespace, banner: Callable[[str], str], after_stop: Callable[[], None] | None = None
) -> int:
    """Start `server` (listening on `args.host`:`args.port`), print `banner(base_url)`, serve until Ctrl-C, stop
    it, then call `after_stop`; 0 on a clean stop, 2 when the address cannot be listened on."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the servers' access log: a line a request
    try:
        base_url = server.start()
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}; try another --port")
        return 2
    print(banner(base_url), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if after_stop is not None:
            after_stop()
    return 0
