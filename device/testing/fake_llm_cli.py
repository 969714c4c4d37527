"""`spine fake-llm`: serve the fake OpenAI-compatible model (device/testing/fake_llm.py) until Ctrl-C.

For trying the remote reply path and its faults by hand; not used by the daemon.
Also `python -m device.testing.fake_llm_cli --help`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from device.testing.fake_llm import DEFAULT_REPLY, FAULTS, FakeLlmConfig, FakeLlmServer, echo_reply
from device.testing.serve_cli import (
    add_key_argument,
    add_listen_arguments,
    register_command,
    required_key,
    serve_until_interrupted,
    standalone_main,
)

DESCRIPTION = """\
Serve a fake OpenAI-compatible chat model (streaming server-sent events) until Ctrl-C, to try Spine's reply
path without a real model, and to rehearse what real servers do wrong.

To point Spine at it, put this in its config file (`spine run --config FILE`):

  [reply]
  backend = "openai"
  base_url = "http://127.0.0.1:8080/v1"   # the URL printed at start: same host and --port

No key is needed unless you pass --require-key-env NAME; then also set `api_key_env = "NAME"` in [reply].
Then ask Spine anything: the fake model answers with --reply (or --echo) at the pace you set, and you can
interrupt it mid-reply. Faults (--fault):
  hang                     stream some tokens, then go silent without closing (the idle timeout must fire)
  hang_before_first_token  send the headers, then go silent (the first-token timeout must fire)
  disconnect               stream some tokens, then close the connection (a reply cut mid-way)
  malformed                stream some tokens, then a data line that is not JSON
  http_500, http_429       fail the request (429 carries Retry-After: 1)
  wrong_content_type       answer application/json instead of an event stream
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `fake-llm` to the top-level `spine` parser."""
    summary = "serve a fake OpenAI-compatible model to try the remote reply path (and its faults)"
    register_command(subparsers, "fake-llm", summary, DESCRIPTION, add_arguments, serve)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FakeLlmConfig()
    add_listen_arguments(parser, default_port=8080)
    parser.add_argument(
        "--first-token-ms",
        type=float,
        default=defaults.first_token_delay_s * 1000,
        help="delay before the first word, in ms (default: %(default)g)",
    )
    parser.add_argument(
        "--tokens-per-s", type=float, default=defaults.tokens_per_s, help="words per second (default: %(default)g)"
    )
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="the reply text (default: a few plain sentences)")
    parser.add_argument("--echo", action="store_true", help='reply "You said: <your prompt>. ..." instead')
    parser.add_argument(
        "--fault", choices=FAULTS, default="none", metavar="FAULT", help="what goes wrong: see above (default: none)"
    )
    parser.add_argument(
        "--fault-after-tokens",
        type=int,
        default=defaults.fault_after_tokens,
        help="words sent before a hang, disconnect or malformed line (default: %(default)s)",
    )
    add_key_argument(parser)


def serve(args: argparse.Namespace) -> int:
    """Run the server described by parsed `args` until Ctrl-C; 0 on a clean stop, 2 on a bad setup."""
    usable, key = required_key(args)
    if not usable:
        return 2
    reply: str | Callable[[str], str] = echo_reply if args.echo else args.reply
    config = FakeLlmConfig(
        first_token_delay_s=args.first_token_ms / 1000,
        tokens_per_s=args.tokens_per_s,
        reply=reply,
        fault=args.fault,
        fault_after_tokens=args.fault_after_tokens,
        required_api_key=key,
    )
    problem = _invalid(config)
    if problem:
        print(f"error: {problem}")
        return 2
    server = FakeLlmServer(config, host=args.host, port=args.port, log_requests=True)
    return serve_until_interrupted(
        server, args, lambda base_url: f"fake LLM serving at {base_url} (fault: {config.fault}); Ctrl-C to stop"
    )


def _invalid(config: FakeLlmConfig) -> str | None:
    if config.first_token_delay_s < 0:
        return "--first-token-ms must be >= 0"
    if config.tokens_per_s <= 0:
        return "--tokens-per-s must be > 0"
    if config.fault_after_tokens < 0:
        return "--fault-after-tokens must be >= 0"
    return None


def main(argv: list[str] | None = None) -> int:
    return standalone_main("fake-llm", DESCRIPTION, add_arguments, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
