"""`spine bench [edge|audio|echo|latency|realstream|monitor|reliability]`: the command line of every bench (the benches
are imported when their command runs, not with `spine`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from device.errors import UserError

ECHO_SCENES = Path("scenes/echo")
EDGE_REPORT = Path("docs/bench/edge.md")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench` and its commands to the top-level `spine` parser."""
    bench = subparsers.add_parser(
        "bench", help="measure Spine: with no WHAT, the edge suite against the peers (about 15 min)",
        description="With no WHAT: the edge suite (`spine bench edge`): idle cost next to openWakeWord, barge-in "
        "next to pipecat, turn latency, components, scaling and a Raspberry Pi estimate, in docs/bench/. Each WHAT "
        "is one deeper bench.",
    )  # fmt: skip
    bench.set_defaults(func=_cmd_bench_edge, short=False, report=EDGE_REPORT, out=Path("out/bench"), config=None)
    bench_sub = bench.add_subparsers(dest="bench", required=False, metavar="WHAT")
    edge = bench_sub.add_parser(
        "edge", help="the edge suite (what `spine bench` runs): cost and interruption next to the peers",
        description="Runs, each alone on the machine: idle listening (spine run on a silent PulseAudio mic, next to "
        "openWakeWord's own loop and openWakeWord + Silero over the same models); interruption (22 scenes of the "
        "echo suite through Spine, and their recorded mic through pipecat's Silero VAD and default interruption, "
        "installed once into its own venv: out/peer-venv or $SPINE_PEER_VENV); turn latency (scenes/latency.toml "
        "once per backend); components (whisper.cpp, Piper, AEC3, Silero, openWakeWord, hearing per period, the "
        "sound card callback under load); "
        "scaling (1, 2, 4 wake word heads); and a Raspberry Pi estimate. Writes --report (Markdown), the same "
        "name .json, idle.png and interruption.png beside it. About 15 minutes on 2 free cores; --short (CI) "
        "about 3. Needs pulseaudio, espeak-ng and network access to PyPI the first time (pipecat).",
    )  # fmt: skip
    edge.add_argument("--config", type=Path, help="configuration TOML without [audio] (the bench sets it)")
    edge.add_argument("--short", action="store_true", help="the CI setting: seconds of audio, two scenes")
    edge.add_argument("--report", type=Path, default=EDGE_REPORT, help=f"Markdown report (default {EDGE_REPORT})")
    edge.add_argument("--out", type=Path, default=Path("out/bench"), help="where the runs' files go")
    edge.set_defaults(func=_cmd_bench_edge)
    audio = bench_sub.add_parser(
        "audio", help="callback timing, jitter, xruns and cut-to-silence on the configured devices, under load",
        description="Stream full duplex on the configured devices while real ASR and TTS load both cores; cut "
        "playback every 2 s. Prints a table (and JSON with --json); exit 1 if there were xruns or a cut took "
        "longer than one period + the fade + the reported output latency.",
    )  # fmt: skip
    audio.add_argument("--config", type=Path, help="configuration TOML (devices, period)")
    audio.add_argument("--seconds", type=float, default=60.0, help="streaming time per setting (default 60)")
    audio.add_argument(
        "--switch-intervals-ms", default="5,1", help="sys.setswitchinterval values to compare, ms (default 5,1)"
    )
    audio.add_argument("--no-load", action="store_true", help="do not run ASR and TTS alongside")
    audio.add_argument("--json", type=Path, help="also write the results as JSON here")
    audio.set_defaults(func=_cmd_bench_audio)

    echo = bench_sub.add_parser(
        "echo", help="the echo scene suite: barge-in with and without echo cancellation, in virtual time",
        description="Run every scene of the echo suite (scenes/echo: talk-overs swept over 0.3-6 s into the first "
        "answer and into a later one, echo-only scenes, hard rooms) with AEC3 on, and the echo-only scenes also "
        "with AEC3 off, in the simulated room with the real models, in virtual time; write the issue-9 target "
        "table and the tables by scene class, onset, talk-over kind and room (missed, stop phrases honoured, "
        "onset-to-silence p50/p95 by echo level, false barge-ins, self-interruptions, self-replies) to "
        "docs/echo-suite.md and .json. About 7 minutes of CPU on 2 free cores.",
    )  # fmt: skip
    echo.add_argument("--config", type=Path, help="configuration TOML (the suite toggles [aec] enabled itself)")
    echo.add_argument("--scenes", type=Path, default=ECHO_SCENES, help=f"scene dir or file (default {ECHO_SCENES})")
    echo.add_argument("--only", help="run only scenes whose name contains one of these comma-separated words")
    echo.add_argument("--report", type=Path, default=Path("docs/echo-suite.md"), help="Markdown report to write")
    echo.add_argument("--out", type=Path, default=Path("out/echo-suite"), help="where each run's files go")
    echo.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1), help="worker processes")
    echo.add_argument("--no-compare", action="store_true", help="skip the AEC-off runs of the echo-only scenes")
    echo.set_defaults(func=_cmd_bench_echo)

    latency = bench_sub.add_parser(
        "latency", help="how long the user waits for an answer: p50/p95 per stage, simulated room, wall clock",
        description="Run a scene of short questions (default scenes/latency.toml) in the simulated room on the "
        "wall clock, with the real models, --runs times with the local responder and --runs times with "
        "`[reply] backend = \"openai\"` against an in-process fake server (first token after --first-token-ms, "
        "then --tokens-per-s). Reports p50/p95 of the user's speech end -> first reply audio, endpoint decision "
        "-> first audio, and each stage (endpointing, ASR, first token, first sentence, TTS, to the speaker), "
        "and checks the target: first audio <= first-token delay + 250 ms after the endpoint decision. Writes "
        "--report (Markdown) and the same name with .json. Measure on an otherwise idle machine: it runs in real "
        "time (about 90 s per run and backend with the default scene). Exit 1 if a question went unanswered.",
    )  # fmt: skip
    latency.add_argument("--config", type=Path, help="configuration TOML (the bench sets [reply] itself)")
    latency.add_argument(
        "--scene", type=Path, default=Path("scenes/latency.toml"), help="scene TOML (default scenes/latency.toml)"
    )
    latency.add_argument("--runs", type=int, default=3, help="runs of the scene per backend (default 3)")
    latency.add_argument(
        "--first-token-ms", type=float, default=300.0, help="fake server: delay before the first token (default 300)"
    )
    latency.add_argument("--tokens-per-s", type=float, default=30.0, help="fake server: tokens per second (default 30)")
    latency.add_argument("--report", type=Path, default=Path("docs/latency.md"), help="Markdown report to write")
    latency.add_argument("--out", type=Path, default=Path("out/latency"), help="where each run's files go")
    latency.set_defaults(func=_cmd_bench_latency)

    realstream = bench_sub.add_parser(
        "realstream", help="spine run on a PulseAudio room, talked over by espeak-ng, with and without CPU load",
        description="Start a private PulseAudio whose mic hears the speaker at 0 dB and keeps Spine's output and "
        "the user's voice apart in one recording; run `spine run` in sessions (each first answer is the first "
        "after start), ask for a story and talk over it at 0.3, 0.7, 1.5, 3 and 6 s (\"Stop.\", \"Never mind.\", "
        "\"Hey Jarvis, stop.\", \"Hey Jarvis. What time is it?\"), half the sessions under `stress-ng --cpu 2`. "
        "Reports onset -> silence p50/p95, missed talk-overs, self-interruptions, self-replies and stop phrases "
        "honoured against the targets of issue 9 in --report (Markdown) and .json. Real time: about 12 min with "
        "the default 5 sessions per setting; run it niced on a shared machine. Needs pulseaudio and stress-ng.",
    )  # fmt: skip
    realstream.add_argument("--config", type=Path, help="configuration TOML without [audio] (the bench sets it)")
    realstream.add_argument("--sessions", type=int, default=5, help="sessions of 4 talk-overs per setting (default 5)")
    realstream.add_argument("--short", action="store_true", help="the CI setting: 4 conversations, one under load")
    realstream.add_argument(
        "--hour", action="store_true",
        help="the real-stream soak instead: one spine run talked over for --minutes; writes docs/real-stream-hour.md "
        "unless --report says otherwise",
    )  # fmt: skip
    realstream.add_argument("--minutes", type=float, default=60.0, help="length of the --hour soak (default 60)")
    realstream.add_argument("--user-gain-db", type=float, default=0.0, help="the user's voice level (default 0 dB)")
    realstream.add_argument(
        "--reanalyse", action="store_true", help="only analyse the sessions already in --out and rewrite the report"
    )
    realstream.add_argument("--report", type=Path, default=Path("docs/real-stream.md"), help="Markdown report")
    realstream.add_argument("--out", type=Path, default=Path("out/realstream"), help="where each session's files go")
    realstream.set_defaults(func=_cmd_bench_realstream)

    monitor = bench_sub.add_parser(
        "monitor",
        help="what the browser monitor costs spine run's audio: xruns, FSM loop timing, CPU, with and without "
        "a headless Chromium listening (private PulseAudio room; needs /usr/bin/chromium and Playwright)",
    )
    monitor.add_argument("--seconds", type=float, default=60.0, help="length of each phase (default 60)")
    monitor.add_argument("--config", type=Path, default=None, help="settings for spine run (no [monitor], [audio])")
    monitor.add_argument("--json", type=Path, default=Path("docs/monitor-cost.json"), help="where to write")
    monitor.set_defaults(func=_cmd_bench_monitor)

    reliability = bench_sub.add_parser(
        "reliability", help="proof that interruption always ends in a defined state: the interruption campaign",
        description="Run the interruption campaign: --conversations conversations in virtual time, each with one "
        "interruption at a random moment (the wake word, speech, a cough, the monitor's button, typed text, a "
        "mute), the spine, jobs and playback real, hearing, speech to text and synthesis standing in (see "
        "device/bench/campaign.py), each checked against the contract of docs/architecture.md. Writes "
        "docs/reliability.md (and .json); keeps the event log of every conversation that broke the contract in "
        "--out. Then its slice with the real models: --real-conversations conversations with real hearing, "
        "whisper.cpp and Piper in hard rooms (device/bench/campaign_real.py). Then the simulated soak: one run of "
        "--soak-minutes of such conversations back to back, engines "
        "failing now and then, checked for stuck states, leaks, memory and the log's growth (device/bench/soak.py). "
        "Then the fault table: the tests that inject each fault of device/bench/faults.py, run with pytest, each "
        "row's result beside its defined outcome. The real-stream hour's figures are quoted from --hour-report. "
        "Exit 1 if anything broke. About 15 minutes on 2 cores (5 without the fault table).",
    )  # fmt: skip
    reliability.add_argument("--conversations", type=int, default=2000, help="how many (default 2000)")
    reliability.add_argument(
        "--real-conversations", type=int, default=100,
        help="conversations of the slice with the real models in hard rooms (default 100; 0: none)",
    )  # fmt: skip
    reliability.add_argument("--seed", type=int, default=16, help="the campaign's and the soak's seed (default 16)")
    reliability.add_argument(
        "--soak-minutes", type=float, default=60.0, help="virtual minutes of the simulated soak (default 60; 0: none)"
    )
    reliability.add_argument(
        "--no-faults", action="store_true", help="leave out the fault table's tests (they take a few minutes)"
    )
    reliability.add_argument(
        "--hour-report", type=Path, default=Path("docs/real-stream-hour.json"),
        help="the real-stream hour's figures to quote (from spine bench realstream --hour)",
    )  # fmt: skip
    reliability.add_argument("--config", type=Path, help="configuration TOML (models)")
    reliability.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1), help="worker processes")
    reliability.add_argument("--report", type=Path, default=Path("docs/reliability.md"), help="Markdown report")
    reliability.add_argument("--out", type=Path, default=Path("out/reliability"), help="failing conversations' logs")
    reliability.set_defaults(func=_cmd_bench_reliability)


def _cmd_bench_edge(args: argparse.Namespace) -> int:
    from device.bench.edge import FULL, SHORT, run_edge, write
    from device.config import load_config

    config = load_config(args.config)
    config_toml = args.config.read_text(encoding="utf-8") if args.config else ""
    if "[audio]" in config_toml:
        raise UserError(f"{args.config} sets [audio]: the edge bench chooses the PulseAudio room itself")
    document = run_edge(config, config_toml, SHORT if args.short else FULL, args.out, say=_say)
    write(document, args.report)
    print(f"report: {args.report} (+ .json, idle.png, interruption.png); runs in {args.out}/")
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def _cmd_bench_audio(args: argparse.Namespace) -> int:
    from device.config import load_config

    config = load_config(args.config)
    from device.bench.audio import bench_audio

    intervals = [float(x) for x in args.switch_intervals_ms.split(",")]
    results = bench_audio(config, args.seconds, intervals, not args.no_load, args.json)
    return 0 if all(r.xruns == 0 and r.cut_to_silence_max_ms <= r.cut_bound_ms for r in results) else 1


def _cmd_bench_echo(args: argparse.Namespace) -> int:
    from device.bench.echo import run_suite
    from device.bench.echo_measures import aggregate
    from device.bench.echo_report import report_json, report_markdown
    from device.bench.tables import write_report
    from device.config import load_config

    config = load_config(args.config)
    scenes = sorted(args.scenes.glob("*.toml")) if args.scenes.is_dir() else [args.scenes]
    if not scenes:
        raise UserError(f"no scene files (*.toml) in {args.scenes}")
    if args.only:
        scenes = [s for s in scenes if any(word in s.stem for word in args.only.split(","))]
    also = "" if args.no_compare else " (the echo-only ones also with AEC off)"
    print(f"running {len(scenes)} scenes with AEC on{also} in {args.jobs} processes ...", flush=True)
    result = run_suite(config, scenes, args.out, args.jobs, compare_no_aec=not args.no_compare)
    command = "spine bench echo" + (f" --scenes {args.scenes}" if args.scenes != ECHO_SCENES else "")
    write_report(args.report, report_markdown(result, command), report_json(result))
    on = aggregate(result["runs"], True)
    print(f"report: {args.report} (+ .json); runs in {args.out}/")
    print(
        f"AEC on: echo-only false barge-ins {on['echo_only_false_barge_ins']} over "
        f"{on['echo_only_assistant_speech_min']} min; onset->silence p95 "
        f"{on['onset_to_silence_ms']['user_at_least_as_loud']['p95']} ms (user >= echo), "
        f"{on['onset_to_silence_ms']['echo_louder_up_to_6_db']['p95']} ms (echo up to 6 dB louder); "
        f"missed {on['missed']} of {on['talk_overs']} (worst cell {on['missed_pct_worst_cell']} %), stops honoured "
        f"{on['stops_honoured_pct']} % (answered {on['stops_answered']}), self-interruptions "
        f"{on['self_interruptions']}, self-replies {on['self_replies']}"
    )
    return 0


def _cmd_bench_realstream(args: argparse.Namespace) -> int:
    import signal

    from device.bench.realstream import full_plan, reanalyse, run_realstream, short_plan
    from device.bench.realstream_report import report_markdown
    from device.bench.tables import write_report

    if args.sessions < 1:
        raise UserError(f"--sessions must be at least 1, got {args.sessions}")
    if args.hour:
        return _realstream_hour(args)
    plan = short_plan() if args.short else full_plan(args.sessions)
    conversations = sum(len(s.talk_overs) for s in plan)
    # SIGTERM ends the bench through its `finally`s: spine run, stress-ng, parec and the PulseAudio it started.
    signal.signal(signal.SIGTERM, lambda _number, _frame: sys.exit(143))
    if args.reanalyse:
        result = reanalyse(args.out)
    else:
        print(f"running {len(plan)} sessions of spine run ({conversations} talk-over conversations) on the wall "
              "clock ...", flush=True)  # fmt: skip
        result = run_realstream(plan, args.out, args.config, args.user_gain_db)
    command = "spine bench realstream" + (" --short" if args.short else "")
    if not args.short and args.sessions != 5:
        command += f" --sessions {args.sessions}"
    if args.user_gain_db:
        command += f" --user-gain-db {args.user_gain_db:g}"
    write_report(args.report, report_markdown(result, command), result)
    print(f"report: {args.report} (+ .json); sessions in {args.out}/")
    for name, key in (("with load", "load"), ("without load", "no_load")):
        a = result["aggregates"][key]
        print(
            f"{name}: talk-overs {a['talk_overs']}, missed {a['missed']}, onset->silence p50/p95 "
            f"{a['onset_to_silence_ms']['p50']}/{a['onset_to_silence_ms']['p95']} ms, self-interruptions "
            f"{a['self_interruptions']}, self-replies {a['self_replies']}, stop phrases honoured "
            f"{a['stop_phrases_honoured']} of {a['stop_phrases']}"
        )
    return 0


def _realstream_hour(args: argparse.Namespace) -> int:
    import signal

    from device.bench.realstream import hour_plan, reanalyse, run_realstream
    from device.bench.realstream_hour import hour_markdown, hour_result, judged_again
    from device.bench.tables import write_report
    from device.rates import SPINE_RATE_HZ

    if args.minutes <= 0:
        raise UserError(f"--minutes must be positive, got {args.minutes:g}")
    report = Path("docs/real-stream-hour.md") if args.report == Path("docs/real-stream.md") else args.report
    out = Path("out/realstream-hour") if args.out == Path("out/realstream") else args.out
    signal.signal(signal.SIGTERM, lambda _number, _frame: sys.exit(143))
    if args.reanalyse:
        try:
            sessions = reanalyse(out)["sessions"]
        except UserError as error:  # no sessions kept, or logs of an older version: the kept analysis is judged again
            if not report.with_suffix(".json").exists():
                raise
            print(f"{error}: judging the analysis kept in {report.with_suffix('.json')} again", flush=True)
            sessions = [judged_again(report.with_suffix(".json"))["session"]]
    else:
        print(f"running spine run for {args.minutes:g} minutes of talked-over conversations ...", flush=True)
        sessions = run_realstream(hour_plan(args.minutes), out, args.config, args.user_gain_db)["sessions"]
    result = hour_result(sessions[0], SPINE_RATE_HZ)
    command = "spine bench realstream --hour" + (f" --minutes {args.minutes:g}" if args.minutes != 60 else "")
    write_report(report, hour_markdown(result, command), result)
    rss = result["rss_mb"]
    print(
        f"report: {report} (+ .json); {result['minutes']} min, {result['conversations']} conversations, stuck "
        f"{result['stuck']}, leaks {result['aggregate']['leaks']}, RSS {rss['after_first_tenth']} -> "
        f"{rss['at_end']} MB, log {result['log_mb_per_hour']} MB/h"
    )
    return 0 if all(result["targets"].values()) else 1


def _cmd_bench_monitor(args: argparse.Namespace) -> int:
    import signal

    from device.bench.monitor import bench_monitor, report_markdown, write

    if args.seconds <= 0:
        raise UserError(f"--seconds must be positive, got {args.seconds}")
    signal.signal(signal.SIGTERM, lambda _number, _frame: sys.exit(143))  # the `finally`s stop what it started
    result = bench_monitor(args.seconds, args.config)
    command = "spine bench monitor" + (f" --seconds {args.seconds:g}" if args.seconds != 60 else "")
    write(result, args.json, command)
    print(report_markdown(result, command) + f"written: {args.json}")
    return 0


def _cmd_bench_latency(args: argparse.Namespace) -> int:
    from device.bench.latency import run_latency
    from device.bench.latency_report import NAMES, report_json, report_markdown
    from device.bench.tables import write_report
    from device.config import load_config

    config = load_config(args.config)
    if args.runs < 1:
        raise UserError(f"--runs must be at least 1, got {args.runs}")
    if args.first_token_ms < 0 or args.tokens_per_s <= 0:
        raise UserError("--first-token-ms must be >= 0 and --tokens-per-s > 0")
    print(f"running {args.scene} {args.runs} times x (local, openai fake server) on the wall clock ...", flush=True)
    result = run_latency(
        config, args.scene, args.out, args.runs, args.first_token_ms, args.tokens_per_s, progress=print
    )
    command = f"spine bench latency --runs {args.runs}"
    if args.scene != Path("scenes/latency.toml"):
        command += f" --scene {args.scene}"
    if (args.first_token_ms, args.tokens_per_s) != (300.0, 30.0):
        command += f" --first-token-ms {args.first_token_ms:g} --tokens-per-s {args.tokens_per_s:g}"
    write_report(args.report, report_markdown(result, command), report_json(result, command))
    print(f"report: {args.report} (+ .json); runs in {args.out}/")
    unanswered = 0
    for name, backend in result["backends"].items():
        stats, target = backend["stats"], backend["target"]
        unanswered += sum(r["questions"] - r["answered"] for r in backend["runs"])
        print(
            f"{NAMES[name]}: speech end -> first audio p50/p95 {stats['speech_end_to_first_audio']['p50']}/"
            f"{stats['speech_end_to_first_audio']['p95']} ms; endpoint -> first audio "
            f"{stats['endpoint_to_first_audio']['p50']}/{stats['endpoint_to_first_audio']['p95']} ms "
            f"(target <= {target['target_ms']} ms: {'holds' if target['holds_p95'] else 'MISSED'}; "
            f"ASR p50 {stats['asr']['p50']}, TTS p50 {stats['tts_first_chunk']['p50']} ms)"
        )
    if unanswered:
        print(f"{unanswered} questions went unanswered: see the runs' summary.json")
    return 1 if unanswered else 0


def _cmd_bench_reliability(args: argparse.Namespace) -> int:
    from device.bench.campaign import report_lines, run_campaign, tally
    from device.bench.tables import write_report
    from device.config import load_config

    if args.conversations < 1 or args.jobs < 1 or args.real_conversations < 0:
        raise UserError(
            "--conversations and --jobs must be at least 1 and --real-conversations at least 0, got "
            f"{args.conversations}, {args.jobs}, {args.real_conversations}"
        )
    config = load_config(args.config)
    shown = max(1, args.conversations // 20)

    def progress(done: int, total: int) -> None:
        if done % shown == 0 or done == total:
            print(f"  {done} of {total} conversations ({100 * done // total} %)", flush=True)

    print(f"interruption campaign: {args.conversations} conversations in {args.jobs} processes ...", flush=True)
    outcomes, wall_s = run_campaign(args.conversations, args.seed, config, args.out, args.jobs, progress)
    result = tally(outcomes)
    print(f"campaign: {result['broke_the_contract']} of {result['conversations']} broke the contract"
          f"{'' if not result['broke_the_contract'] else f' (their logs in {args.out}/)'}", flush=True)  # fmt: skip
    real_lines: list[str] = []
    real_json: dict[str, Any] = {}
    real_broke = 0
    if args.real_conversations > 0:
        from device.bench import campaign_real

        print(f"slice with the real models: {args.real_conversations} conversations ...", flush=True)
        real, real_wall_s = campaign_real.run_real_slice(
            args.real_conversations, args.seed, config, args.out, args.jobs, progress
        )
        real_json = campaign_real.tally_real(real)
        real_broke = int(real_json["broke_the_contract"])
        real_lines = ["", *campaign_real.report_lines(real_json, args.seed, real_wall_s, args.jobs)]
        print(f"slice: {real_broke} of {args.real_conversations} broke the contract", flush=True)
    soak_lines: list[str] = []
    soak_json: dict[str, object] = {}
    soak_problems = 0
    if args.soak_minutes > 0:
        import dataclasses
        import time

        from device.bench import soak
        from device.engines.load import load_engines

        print(f"soak: {args.soak_minutes:g} virtual minutes in one run ...", flush=True)
        began = time.perf_counter()
        args.out.mkdir(parents=True, exist_ok=True)
        soaked = soak.run_soak(
            args.soak_minutes, args.seed, config, load_engines(config, deterministic=True), args.out / "soak.jsonl"
        )
        soak_lines = ["", *soak.report_lines(soaked, args.soak_minutes, args.seed, time.perf_counter() - began)]
        soak_json = dataclasses.asdict(soaked)
        soak_problems = len(soaked.problems)
        print(f"soak: {soak_problems} problems; log {args.out / 'soak.jsonl'}", flush=True)
    from device.bench import faults
    from device.bench.realstream_hour import quoted_lines

    fault_results = None if args.no_faults else faults.run_fault_tests(faults.FAULTS, lambda m: print(m, flush=True))
    failed_rows = faults.failed_rows(fault_results)
    if fault_results is not None:
        print(f"fault table: {len(faults.FAULTS) - failed_rows} of {len(faults.FAULTS)} rows hold", flush=True)
    command = (
        f"spine bench reliability --conversations {args.conversations} --seed {args.seed}"
        f" --real-conversations {args.real_conversations} --soak-minutes {args.soak_minutes:g}"
        + (" --no-faults" if args.no_faults else "")
    )
    text = "\n".join(
        [
            "# Reliability: interruption and failure always end in a defined state",
            "",
            f"Generated by `{command}` (issue 16): the interruption campaign, the simulated soak, the fault table",
            f"(its tests run now) and the real-stream hour (quoted from {args.hour_report}).",
            "",
            *report_lines(result, args.seed, wall_s, args.jobs),
            *real_lines,
            *soak_lines,
            "",
            *faults.report_lines(fault_results),
            "",
            *quoted_lines(args.hour_report),
        ]
    )
    document = {
        "campaign": {**result, "seed": args.seed, "wall_s": round(wall_s, 1)},
        "real_models_slice": real_json,
        "soak": soak_json,
        "faults": faults.results_json(fault_results),
    }
    write_report(args.report, text + "\n", document)
    print(f"report: {args.report} (+ .json)")
    return 1 if result["broke_the_contract"] or real_broke or soak_problems or failed_rows else 0
