"""`spine doctor`: can Spine run on these audio devices? Try it for real and say what to do if not.

Spine needs one full-duplex PortAudio stream (mic in, speaker out, one callback, 10 ms periods): that is how
the echo reference and the mic stay aligned sample for sample. So the doctor finds the devices, checks the
rate, then opens exactly such a stream with a callback that plays silence, runs it for about half a second
and counts callbacks and xruns. When the stream cannot be opened it opens each direction alone, to tell a
device that cannot be opened at all (busy, wrong rate) from a pair that cannot run together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# PyAudio ships neither type hints nor a py.typed marker; only its constants are used here.
import pyaudio  # type: ignore[import-untyped]

from device.audio.devices import NO_DEVICE_FIX, DeviceInfo, Direction, devices_of, pick, portaudio, supports
from device.errors import UserError

RUN_S = 0.5
"""How long the test stream runs."""
_START_GRACE_S = 2.0
"""Extra time the stream may take to start before it counts as stalled (PulseAudio takes ~0.1 s)."""

BUSY_FIX = (
    "another program may be holding the device (`fuser -v /dev/snd/*` shows which): stop it, "
    "or use the `pulse` device, which shares the card"
)


@dataclass(frozen=True)
class Finding:
    """One thing the doctor checked: whether it is fine, what it found, and what to do if it is not."""

    ok: bool
    what: str
    fix: str | None = None


def check(
    input_spec: str | int | None, output_spec: str | int | None, rate_hz: int = 16000, period_samples: int = 160
) -> list[Finding]:
    """Check the input and output devices (index, part of a name, or None for the default) for Spine: both
    exist, they take `rate_hz` (or a common native rate Spine resamples from) and they run together in one
    full-duplex stream of `period_samples` periods."""
    with portaudio() as pa:
        devices = devices_of(pa)
        if not any(d.max_input_channels or d.max_output_channels for d in devices):
            return [Finding(False, "no audio device found", NO_DEVICE_FIX)]
        findings: list[Finding] = []
        chosen: dict[Direction, DeviceInfo] = {}
        wanted: tuple[tuple[Direction, str | int | None], ...] = (("input", input_spec), ("output", output_spec))
        for direction, spec in wanted:
            finding, device = _choose(devices, spec, direction)
            findings.append(finding)
            if device is not None:
                chosen[direction] = device
        if len(chosen) < 2:
            return findings
        inp, out = chosen["input"], chosen["output"]
        takes_in, takes_out = supports(pa, inp.index, "input", rate_hz), supports(pa, out.index, "output", rate_hz)
        findings += [_rate_finding(inp, "input", rate_hz, takes_in), _rate_finding(out, "output", rate_hz, takes_out)]
        stream_rate_hz = rate_hz if takes_in and takes_out else _common_rate(inp, out)
        if stream_rate_hz is None:
            findings.append(
                Finding(
                    False,
                    f"the input takes {_rates(inp.input_rates_hz)} and the output {_rates(out.output_rates_hz)}: "
                    "no common rate for one full-duplex stream",
                    "choose an input and an output of the same card, or the `pulse` device (it converts rates)",
                )
            )
            return findings
        stream_period = period_samples * stream_rate_hz // rate_hz
        findings.append(_run_duplex(pa, inp, out, stream_rate_hz, stream_period))
        return findings


def _choose(
    devices: list[DeviceInfo], spec: str | int | None, direction: Direction
) -> tuple[Finding, DeviceInfo | None]:
    if not any(d.channels(direction) for d in devices):
        what = "microphone" if direction == "input" else "speaker"
        lister = "arecord -l" if direction == "input" else "aplay -l"
        fix = (
            f"is the {what} or its sound card connected? `{lister}` lists them; on a Pi, enable the card in config.txt"
        )
        return Finding(False, f"no audio {direction} device found", fix), None
    try:
        device = pick(devices, spec, direction)
    except UserError as error:
        flag = "--input" if direction == "input" else "--output"
        return Finding(
            False, f"{direction}: {error}", f"pass {flag} with an index or part of a name from the list"
        ), None
    how = "the default" if spec is None else f"from {spec!r}"
    return Finding(True, f"{direction}: {device.label} ({device.host_api}, {how})"), device


def _rate_finding(device: DeviceInfo, direction: Direction, rate_hz: int, takes: bool) -> Finding:
    if takes:
        return Finding(True, f"{direction} {device.label} takes {rate_hz} Hz mono 16-bit")
    rates = device.rates_hz(direction)
    if not rates:  # it took none of the probed rates either: the open below will say why
        return Finding(True, f"{direction} {device.label}: could not probe its rates (busy?); trying to open it")
    return Finding(
        True,
        f"{direction} {device.label} does not take {rate_hz} Hz (it takes {_rates(rates)}): Spine will resample "
        f"from its native {device.native_rate_hz(direction)} Hz",
    )


def _common_rate(inp: DeviceInfo, out: DeviceInfo) -> int | None:
    """A rate both devices take, their native ones first (what Spine would run them at, resampling to 16 kHz)."""
    if not inp.input_rates_hz or not out.output_rates_hz:
        return inp.native_rate_hz("input")  # unprobed (busy?): let the open report the real error
    for rate in (inp.native_rate_hz("input"), out.native_rate_hz("output"), *sorted(inp.input_rates_hz)[::-1]):
        if rate in inp.input_rates_hz and rate in out.output_rates_hz:
            return rate
    return None


def _rates(rates: tuple[int, ...]) -> str:
    return ", ".join(str(r) for r in rates) + " Hz" if rates else "no rate we probed"


class _Tally:
    """What the test stream's callback saw (written only by the callback; read after the stream stops)."""

    def __init__(self, frames_wanted: int) -> None:
        self.frames_wanted = frames_wanted
        self.callbacks = 0
        self.frames = 0
        self.input_xruns = 0
        self.output_xruns = 0
        self.done = threading.Event()


def _run_duplex(pa: Any, inp: DeviceInfo, out: DeviceInfo, rate_hz: int, period_samples: int) -> Finding:
    tally = _Tally(round(RUN_S * rate_hz))
    silence = bytes(2 * period_samples)
    input_flags = pyaudio.paInputOverflow | pyaudio.paInputUnderflow
    output_flags = pyaudio.paOutputUnderflow | pyaudio.paOutputOverflow

    def callback(
        in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[bytes, int]:
        tally.callbacks += 1
        tally.frames += frame_count
        tally.input_xruns += bool(status & input_flags)
        tally.output_xruns += bool(status & output_flags)
        if tally.frames >= tally.frames_wanted:
            tally.done.set()
        return (silence if frame_count == period_samples else bytes(2 * frame_count)), pyaudio.paContinue

    setup = f"{rate_hz} Hz mono 16-bit, {period_samples}-sample periods"
    began = time.monotonic()
    try:
        stream = pa.open(
            rate=rate_hz, channels=1, format=pyaudio.paInt16, input=True, output=True,
            input_device_index=inp.index, output_device_index=out.index,
            frames_per_buffer=period_samples, stream_callback=callback,
        )  # fmt: skip
    except (OSError, ValueError) as error:
        return _diagnose_open(pa, inp, out, rate_hz, period_samples, _portaudio_error(error))
    try:
        finished = tally.done.wait(RUN_S + _START_GRACE_S)
        elapsed_s = time.monotonic() - began
    finally:
        stream.stop_stream()
        stream.close()
    if tally.callbacks == 0:
        return Finding(
            False,
            f"the full-duplex stream ({setup}) opened but its callback never ran: the device gives no clock",
            f"check that nothing else holds or suspends the device, then try again; {BUSY_FIX}",
        )
    xruns = f"{tally.input_xruns} input overflows, {tally.output_xruns} output underflows"
    if not finished:
        return Finding(
            False,
            f"the full-duplex stream ({setup}) ran slow: {tally.frames / rate_hz:.2f} s of audio in {elapsed_s:.2f} s "
            f"({xruns})",
            "the device stalls or the machine is overloaded: check `top`, and try a larger period or another device",
        )
    return Finding(True, f"full duplex works: {setup}, {tally.callbacks} callbacks in {elapsed_s:.2f} s, {xruns}")


def _diagnose_open(pa: Any, inp: DeviceInfo, out: DeviceInfo, rate_hz: int, period_samples: int, error: str) -> Finding:
    """The duplex open failed: open each side alone to tell which advice applies."""
    alone = {
        "input": _open_alone(pa, inp, "input", rate_hz, period_samples),
        "output": _open_alone(pa, out, "output", rate_hz, period_samples),
    }
    for direction, problem in alone.items():
        if problem is not None:
            device = inp if direction == "input" else out
            return Finding(False, f"cannot open the {direction} {device.label} at {rate_hz} Hz: {problem}", BUSY_FIX)
    if inp.index == out.index:
        return Finding(
            False,
            f"{inp.label} records and plays, but not both at once in one stream at {rate_hz} Hz: {error}",
            "use separate input and output devices (e.g. a USB microphone and this card's output), "
            "or the `pulse` device",
        )
    return Finding(
        False,
        f"input {inp.label} and output {out.label} each open, but not together in one stream: {error}",
        "choose an input and an output of the same card (one clock), or the `pulse` device",
    )


def _open_alone(pa: Any, device: DeviceInfo, direction: Direction, rate_hz: int, period_samples: int) -> str | None:
    try:
        stream = pa.open(
            rate=rate_hz, channels=1, format=pyaudio.paInt16, frames_per_buffer=period_samples,
            input=direction == "input", output=direction == "output",
            input_device_index=device.index if direction == "input" else None,
            output_device_index=device.index if direction == "output" else None,
            start=False,
        )  # fmt: skip
    except (OSError, ValueError) as error:
        return _portaudio_error(error)
    stream.close()
    return None


def _portaudio_error(error: Exception) -> str:
    """PyAudio raises OSError(errno, text) or ValueError((text, code)): keep the PortAudio text."""
    for arg in error.args:
        if isinstance(arg, str) and not arg.isdigit():
            return f"PortAudio: {arg}"
        if isinstance(arg, tuple) and arg and isinstance(arg[0], str):
            return f"PortAudio: {arg[0]}"
    return f"PortAudio: {error}"
