"""`spine realtime-peer`: serve the realtime test peer (device/testing/realtime_peer.py) until Ctrl-C.

For trying the realtime (WebRTC) reply path and its faults by hand; not used by the daemon.
Also `python -m device.testing.realtime_peer_cli --help`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.testing.realtime_peer_records import DEFAULT_REPLY, PEER_FAULTS, PeerConfig
from device.testing.serve_cli import (
    add_key_argument,
    add_listen_arguments,
    register_command,
    required_key,
    serve_until_interrupted,
    standalone_main,
)

if TYPE_CHECKING:
    from device.testing.realtime_peer import RealtimePeer
    from device.testing.realtime_peer_voice import Voice

DESCRIPTION = """\
Serve a test peer that speaks the OpenAI Realtime protocol over WebRTC (aiortc) until Ctrl-C: the SDP offer to
POST {base}/realtime/calls, the oai-events data channel, Opus audio at 48 kHz both ways. It answers each
response.create with --reply, spoken as one tone per word (or with a Piper voice: --piper-voice), generated
faster than real time and played in real time, and it honours response.cancel, output_audio_buffer.clear and
conversation.item.truncate as the real server does (see docs/realtime.md).

Point a realtime client's base URL at the URL printed at start (same host and --port). No key is needed
unless you pass --require-key-env NAME; then the client must send that environment variable's value.
--record FILE writes, on Ctrl-C (SIGINT), what each call received and what each answer became (as JSON).
Faults (--fault):
  http_401, http_500   refuse every call (401 invalid_api_key, 500 server_error)
  ice_unanswered       answer the offer, then never answer ICE (the WebRTC connection never comes up)
  drop_mid_answer      close the connection --fault-after-ms into an answer's audio
  stall_mid_answer     send nothing more once --fault-after-ms of an answer is generated
  stall_session        never answer session.update
  slow_first_audio     wait 3 s more before an answer's first audio
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `realtime-peer` to the top-level `spine` parser."""
    summary = "serve a test peer for the realtime (WebRTC) backend, with faults"
    register_command(subparsers, "realtime-peer", summary, DESCRIPTION, add_arguments, serve)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PeerConfig()
    add_listen_arguments(parser, default_port=8089)
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="what the peer says to every request")
    parser.add_argument(
        "--first-audio-ms",
        type=float,
        default=defaults.first_audio_delay_s * 1000,
        help="from response.create to the first audio, in ms (default: %(default)g)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=defaults.generation_speed,
        help="how many times faster than real time answers are generated (default: %(default)g)",
    )
    parser.add_argument(
        "--fault", choices=PEER_FAULTS, default="none", metavar="FAULT", help="what goes wrong: see above"
    )
    parser.add_argument(
        "--fault-after-ms",
        type=float,
        default=defaults.fault_after_ms,
        help="how far into an answer a drop or a stall happens, in ms (default: %(default)g)",
    )
    add_key_argument(parser)
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE.json",
        help="on Ctrl-C, write the calls: the events received, the truncations, each answer's audio sent and kept",
    )
    parser.add_argument(
        "--piper-voice",
        type=Path,
        metavar="MODEL.onnx",
        help="speak with this Piper voice (its .onnx.json beside it) instead of tones; word timing is estimated",
    )


def serve(args: argparse.Namespace) -> int:
    """Run the peer described by parsed `args` until Ctrl-C; 0 on a clean stop, 2 on a bad setup."""
    problem = _invalid(args)
    if problem:
        print(f"error: {problem}")
        return 2
    usable, key = required_key(args)
    if not usable:
        return 2
    try:
        voice = _voice(args.piper_voice)
    except Exception as error:  # a model that does not load: say which and why, as one line
        print(f"error: --piper-voice {args.piper_voice}: {error}")
        return 2
    config = PeerConfig(
        api_key=key,
        reply=args.reply,
        voice=voice,
        first_audio_delay_s=args.first_audio_ms / 1000,
        generation_speed=args.speed,
        fault=args.fault,
        fault_after_ms=args.fault_after_ms,
    )
    from device.testing.realtime_peer import RealtimePeer

    peer = RealtimePeer(config, host=args.host, port=args.port, log_requests=True)

    def banner(base_url: str) -> str:
        return (f"realtime test peer serving at {base_url} (calls: {base_url}/realtime/calls, fault: {config.fault}); "
                "Ctrl-C to stop")  # fmt: skip

    def record() -> None:
        if args.record is not None:
            args.record.write_text(json.dumps(calls_record(peer), indent=1) + "\n", encoding="utf-8")

    return serve_until_interrupted(peer, args, banner, after_stop=record)


def calls_record(peer: RealtimePeer) -> list[dict[str, Any]]:
    """What `--record` writes: per call, the event types received, the truncations, and each answer's audio
    generated, sent and kept (ms) with the words its kept audio holds."""
    from device.reply.realtime_events import ConversationItemTruncate

    return [
        {
            "received": call.received_types(),
            "truncates": [
                {"item_id": event.item_id, "audio_end_ms": event.audio_end_ms}
                for event in call.received
                if isinstance(event, ConversationItemTruncate)
            ],
            "items": [
                {
                    "id": item.id,
                    "status": item.status,
                    "generated_ms": round(item.generated_ms, 1),
                    "sent_ms": round(item.sent_ms, 1),
                    "truncated_at_ms": item.truncated_at_ms,
                    "kept_words": " ".join(item.kept_words),
                }
                for item in call.assistant_items
            ],
            "user_items": len(call.user_items),
            "ended": call.ended,
        }
        for call in peer.calls
    ]


def _invalid(args: argparse.Namespace) -> str | None:
    if args.first_audio_ms < 0:
        return "--first-audio-ms must be >= 0"
    if not args.speed > 0:
        return "--speed must be > 0"
    if args.fault_after_ms < 0:
        return "--fault-after-ms must be >= 0"
    if not args.reply.split():
        return "--reply must say something"
    if args.record is not None and not args.record.parent.is_dir():
        return f"--record {args.record}: no such directory {args.record.parent}"
    if args.piper_voice is not None and not args.piper_voice.is_file():
        return f"--piper-voice {args.piper_voice}: no such file (give a Piper voice's .onnx, its .onnx.json beside it)"
    return None


def _voice(model: Path | None) -> Voice | None:
    if model is None:
        return None  # the tones
    from device.engines.tts import PiperTts
    from device.testing.realtime_peer_voice import PiperVoice

    return PiperVoice(PiperTts(model, model.with_name(model.name + ".json")))


def main(argv: list[str] | None = None) -> int:
    return standalone_main("realtime-peer", DESCRIPTION, add_arguments, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
