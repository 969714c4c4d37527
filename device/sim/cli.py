"""`spine demo`: a conversation in the simulated room, printed as a timeline and a digest of its summary."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEMO_HELP = """\
Run the whole assistant in a simulated room: a virtual sound card whose speaker echoes back into the mic,
and a scripted user voiced by espeak-ng. Uses the real models. Writes, into --out:
  events.jsonl  every event and decision (replay it with `spine replay`)
  mic.wav, speaker.wav   what the mic heard and what the speaker played (16 kHz)
  summary.json  transcripts, replies, what was heard, latencies, barge-ins, cutoff, stale audio
  timeline.png  waveforms with state bands and event marks
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `demo` to the top-level `spine` parser."""
    demo = subparsers.add_parser(
        "demo", help="run a conversation in the simulated room", description=DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    demo.add_argument("--config", type=Path, help="configuration TOML (default: built-in defaults)")
    demo.add_argument("--scene", type=Path, help="scene TOML (default: the built-in scene; see docs/scenes.md)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default: out/demo)")
    demo.add_argument(
        "--clock", choices=("virtual", "wall"), default="virtual",
        help="virtual: as fast as possible and reproducible (default); wall: paced in real time",
    )  # fmt: skip
    demo.add_argument(
        "--monitor", action="store_true",
        help="with --clock wall: serve the monitoring page during the run (the [monitor] settings; see "
        "`spine monitor-url`)",
    )  # fmt: skip
    demo.add_argument(
        "--monitor-hold-s", type=float, default=0.0, metavar="SECONDS",
        help="with --monitor: keep serving this long after the scene ends (default 0)",
    )  # fmt: skip
    demo.add_argument(
        "--realtime-peer", action="store_true",
        help="with --clock wall: answer with the realtime backend, against the test peer started in this process "
        "(`spine realtime-peer`: one tone per word); the config's other [reply] settings stay",
    )  # fmt: skip
    demo.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from device.config import load_config
    from device.errors import UserError
    from device.rates import SPINE_RATE_HZ as RATE_HZ
    from device.sim.demo import demo
    from device.sim.scene import load_scene, refuse_overlapping_says, scene_line

    config = load_config(args.config)
    scene = load_scene(args.scene)
    refuse_overlapping_says(scene, args.scene, RATE_HZ)
    if scene.duration_s is not None and scene.duration_s > config.sim.max_duration_s:
        raise UserError(
            f"`duration_s` = {scene.duration_s:g} s is longer than [sim] max_duration_s = "
            f"{config.sim.max_duration_s:g} s: shorten the scene, or raise max_duration_s in the --config file",
            where=scene_line(args.scene, ("duration_s",)),
        )
    if args.monitor and args.clock != "wall":
        raise UserError("--monitor needs --clock wall: in virtual time the scene runs faster than a browser watches")
    name = str(args.scene) if args.scene else "built-in default"
    began = time.perf_counter()
    hold_s = max(0.0, args.monitor_hold_s) if args.monitor else None
    if args.realtime_peer:
        if args.clock != "wall":
            raise UserError("--realtime-peer needs --clock wall: the peer answers in real time over WebRTC")
        from device.sim.realtime_demo import demo_with_peer

        summary = demo_with_peer(config, scene, name, args.out, hold_s)
    else:
        summary = demo(config, scene, name, args.out, args.clock, hold_s)
    from device.runtime.eventlog import read_log
    from device.timeline import lines

    for line in lines(read_log(args.out / "events.jsonl").steps):
        print(line)
    _render_plot(args.out)
    print()
    print(_digest(summary, time.perf_counter() - began, args.out))
    return 0


def _render_plot(out: Path) -> None:
    try:
        from device.sim.plot import render_timeline
    except ImportError:  # the picture is a convenience; the run's facts are in the files already written
        return
    render_timeline(out)


def _digest(summary: dict[str, object], wall_s: float, out: Path) -> str:
    turns = summary["turns"]
    assert isinstance(turns, list)
    rows = [f"Scene done in {wall_s:.1f}s wall time ({summary['duration_s']}s of audio, {summary['clock']} clock)."]
    for turn in turns:
        rows.append(
            f"  turn {turn['turn']}: heard user {turn['transcript']!r} (WER {turn['wer']:.0%}); "
            f"{'INTERRUPTED, user heard' if turn['interrupted'] else 'said'} {turn['heard_text'][:60]!r}"
        )
    barge_ins = summary["barge_ins"]
    assert isinstance(barge_ins, list)
    silences = ", ".join(f"{b['onset_to_silence_ms']:.0f}" for b in barge_ins if b["onset_to_silence_ms"] is not None)
    rows.append(
        f"  barge-ins {len(barge_ins)} (onset -> silence {silences or '-'} ms; false {summary['false_barge_ins']}), "
        f"cutoff {summary['cutoff_max_samples_after_decision']} samples after decision "
        f"(period {summary['period_samples']}), stale samples {summary['stale_samples_played']}, "
        f"leaks {summary['leaks']}, xruns {summary['xruns']}"
    )
    aec = summary.get("aec")
    if isinstance(aec, dict) and aec.get("enabled"):
        rows.append(
            f"  echo canceller: converged at {aec['converged_at_s']} s, ERLE after it "
            f"{aec['erle_after_convergence_db']} dB, {aec['cost_per_frame_us']} us per 10 ms frame"
        )
    notes = summary.get("notes")
    rows += [f"  note: {note}" for note in notes] if isinstance(notes, list) else []
    rows.append(f"  files in {out}/: events.jsonl mic.wav cleaned.wav speaker.wav summary.json timeline.png")
    return "\n".join(rows)
