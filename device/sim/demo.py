"""`spine demo`: the whole daemon in the simulated room, with the real models.

The same core, executor, hearing and jobs as the daemon; only the sound card is virtual. Two clocks:
* virtual (default): the card advances one period at a time as fast as the machine allows; jobs finish after
  their modelled cost (`[sim]` in the config). The same scene gives a byte-identical `events.jsonl`.
* wall: the card is paced in real time by its own thread, jobs run on worker threads and take what they take.
"""

from __future__ import annotations

import json
import time
import wave
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.config import Config, samples, wake_phrase
from device.core.events import EchoCancellerChanged, Event
from device.core.states import Idle
from device.engines.load import Engines, load_engines
from device.errors import UserError
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.daemon import ClockKind, Daemon
from device.runtime.eventlog import LoggedStep, read_log
from device.runtime.fsm_thread import AudioSide, FsmThread
from device.runtime.jobs import VirtualRunner
from device.sim.bargein import erle_db
from device.sim.card import VirtualCard
from device.sim.clocks import VirtualTime, WallTime
from device.sim.playback import PlaybackGate
from device.sim.scene import Scene
from device.sim.summary import summarise

CAPTURE_HISTORY_S = 60


@dataclass
class Run:
    """What a finished run leaves behind for the summary."""

    card: VirtualCard
    end_sample: int
    xruns: int
    wall_time_s: float


class Rig(Daemon):
    """The daemon in the simulated room: its playback is the virtual card's gate."""

    def __init__(self, config: Config, scene: Scene, engines: Engines, log_path: Path, clock: ClockKind):
        fade = samples(config.audio.fade_ms / 1000)
        super().__init__(
            config, engines, log_path, clock, lambda report: PlaybackGate(fade, report, config.period_samples)
        )
        assert isinstance(self.playback, PlaybackGate)
        self.gate = self.playback
        self.card = VirtualCard(self.gate, scene, RATE_HZ, capacity_samples=120 * RATE_HZ)
        self._idle_since: int | None = None
        self.cleaned: list[npt.NDArray[np.int16]] = []

    def hear(self, mic: npt.NDArray[np.int16], start: int, played: npt.NDArray[np.int16]) -> list[Event]:
        facts = super().hear(mic, start, played)
        self.cleaned.append(self.last_cleaned.copy())  # what hearing heard, for the ERLE of the run
        return facts

    def finished(self, now: int, scene: Scene) -> bool:
        """The scene's end: its duration, or the script done and the assistant idle for a while."""
        sim = self.config.sim
        # Never past max_duration_s, whatever the scene asks (`spine demo` refuses such a scene up front).
        limit_s = sim.max_duration_s if scene.duration_s is None else min(scene.duration_s, sim.max_duration_s)
        if now >= samples(limit_s):
            return True
        if scene.duration_s is not None:
            return False
        quiet = (
            isinstance(self.loop.state, Idle)
            and self.card.player.done(now)
            and not self.gate.busy()
            and self.timers.armed() == 0
            and (not isinstance(self.runner, VirtualRunner) or self.runner.idle())
        )
        if not quiet:
            self._idle_since = None
            return False
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since >= samples(sim.idle_tail_s)


def run_virtual(rig: Rig, scene: Scene) -> Run:
    """The scene in virtual time: the one loop (device/runtime/fsm_thread.py), the card ticking one period per
    round (`VirtualTime`)."""
    began = time.perf_counter()
    clock = VirtualTime(rig, scene)
    FsmThread(rig, clock, clock).run("end of scene")
    return Run(rig.card, clock.now(), xruns=clock.xruns, wall_time_s=time.perf_counter() - began)


def run_wall(rig: Rig, scene: Scene, monitor_hold_s: float | None = None, log_path: Path | None = None) -> Run:
    """The scene on the wall clock: the card paces itself on its own thread; this thread is the FSM thread.

    `monitor_hold_s` not None: the monitor (device/monitor/) serves the run, and `monitor_hold_s` seconds more
    after the scene ends (to download its log); `log_path` is the log it offers."""
    began = time.perf_counter()
    clock = WallTime(rig, scene)
    audio: AudioSide = clock
    monitor = None
    if monitor_hold_s is not None and log_path is not None:
        from device.monitor.attach import with_monitor
        from device.monitor.feed import AudioHealth

        health = lambda: AudioHealth(clock.xruns, rig.gate.underrun_samples)  # noqa: E731
        audio, monitor = with_monitor(replace(rig.config.monitor, enabled=True), rig, clock, log_path, health)
    FsmThread(rig, audio, clock).run("end of scene")
    if monitor is not None:
        time.sleep(monitor_hold_s or 0.0)
        monitor.stop()
    return Run(rig.card, clock.now(), xruns=clock.xruns, wall_time_s=time.perf_counter() - began)


def write_wav(path: Path, audio: npt.NDArray[np.int16]) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes(audio.astype("<i2").tobytes())


def _aec_summary(rig: Rig, steps: tuple[LoggedStep, ...], cleaned: npt.NDArray[np.int16], end: int) -> dict[str, Any]:
    if rig.aec is None:
        return {"enabled": False}
    converged = [s.t for s in steps if isinstance(s.event, EchoCancellerChanged) and s.event.converged]
    card = rig.card
    measured = (
        erle_db(card.mic[:end], cleaned[:end], card.echo[:end], card.user[:end], converged[0], rig.period)
        if converged
        else None
    )
    return {
        "enabled": True,
        "converged_at_s": round(converged[0] / RATE_HZ, 3) if converged else None,
        "erle_after_convergence_db": measured,
        "erle_estimate_db": round(rig.aec.erle_db, 1),
        "cost_per_frame_us": round(rig.aec.cost_per_frame_us, 1),
    }


def make_out_dir(out_dir: Path) -> None:
    """Create the output directory (and its parents); a path that cannot be one is a `UserError` naming it."""
    refuse_a_file_as_out_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create the output directory: {error.strerror}; give --out another directory", where=str(out_dir)
        ) from None


def refuse_a_file_as_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(
            "is a file, not a directory; give --out a directory (it is created if missing)", where=str(out_dir)
        )


def demo(
    config: Config,
    scene: Scene,
    scene_name: str,
    out_dir: Path,
    clock: ClockKind,
    monitor_hold_s: float | None = None,
) -> dict[str, Any]:
    """Run a scene end to end and write events.jsonl, mic.wav, speaker.wav, summary.json, timeline.png."""
    refuse_a_file_as_out_dir(out_dir)  # before the models load: a bad --out fails at once
    engines = load_engines(config, deterministic=clock == "virtual")
    make_out_dir(out_dir)  # after them: a run that cannot start leaves nothing behind
    rig = Rig(config, scene, engines, out_dir / "events.jsonl", clock)
    log_path = out_dir / "events.jsonl"
    run = run_virtual(rig, scene) if clock == "virtual" else run_wall(rig, scene, monitor_hold_s, log_path)
    card = run.card
    cleaned = np.concatenate(rig.cleaned) if rig.cleaned else np.zeros(0, np.int16)
    write_wav(out_dir / "mic.wav", card.mic[: run.end_sample])
    write_wav(out_dir / "speaker.wav", card.speaker[: run.end_sample])
    write_wav(out_dir / "cleaned.wav", cleaned[: run.end_sample])
    steps = read_log(out_dir / "events.jsonl").steps
    summary: dict[str, Any] = {
        "clock": clock,
        "scene": scene_name,
        "duration_s": round(run.end_sample / RATE_HZ, 3),
        "wall_time_s": round(run.wall_time_s, 2),
        **summarise(
            steps,
            card.player.started,
            card.epochs[: run.end_sample],
            config.period_samples,
            wake_phrase=wake_phrase(config.wake),
            xruns=run.xruns,
            underrun_samples=rig.gate.underrun_samples,
            user=card.user[: run.end_sample],
            echo=card.echo[: run.end_sample],
            stop_phrases=config.barge_in.stop_phrases,
        ),
        "aec": _aec_summary(rig, steps, cleaned, run.end_sample),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
