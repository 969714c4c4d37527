"""Audio devices, the doctor and a real full-duplex stream, on a PulseAudio null sink (tests/pulse.py).

The null sink is clocked by PulseAudio like a sound card, and its monitor is the default source: a stream that
plays a signal records it back a few periods later. That makes the loopback test a real check of the
PortAudio callback path (16 kHz mono int16, 10 ms periods): what was played must come back, intact, at a
plausible delay. The pure parts (picking a device, the table) are tested without PortAudio.
"""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pyaudio  # type: ignore[import-untyped]  # PyAudio ships neither type hints nor a py.typed marker
import pytest

from device.audio.cli import device_table, register
from device.audio.devices import NO_DEVICE_FIX, DeviceInfo, find_device, list_devices, pick, portaudio
from device.audio.doctor import Finding, check
from device.errors import UserError

Audio = npt.NDArray[np.int16]
RATE_HZ = 16000
PERIOD_SAMPLES = 160


def _pulse(devices: list[DeviceInfo]) -> DeviceInfo:
    found = [d for d in devices if d.name == "pulse"]
    assert found, f"no `pulse` device among {[d.name for d in devices]}"
    return found[0]


@pytest.mark.slow
def test_list_devices_finds_the_pulse_device_quietly(
    pulse_env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    devices = list_devices()
    pulse = _pulse(devices)
    assert pulse.max_input_channels > 0 and pulse.max_output_channels > 0
    assert pulse.host_api == "ALSA"
    assert RATE_HZ in pulse.input_rates_hz and RATE_HZ in pulse.output_rates_hz
    assert any(d.is_default_input for d in devices) and any(d.is_default_output for d in devices)
    # ALSA and JACK complain on fd 2 while PortAudio probes; none of it may reach the user.
    assert capfd.readouterr().err == ""


@pytest.mark.slow
def test_find_device_by_name_index_and_default(pulse_env: dict[str, str]) -> None:
    pulse = find_device("pulse", "input")
    assert pulse.name == "pulse"
    assert find_device("PUL", "output") == pulse  # case-insensitive part of the name
    assert find_device(pulse.index, "output") == pulse
    assert find_device(str(pulse.index), "input") == pulse
    default = find_device(None, "input")
    assert default.is_default_input and default.max_input_channels > 0


@pytest.mark.slow
def test_unknown_device_lists_the_devices_in_one_line(pulse_env: dict[str, str]) -> None:
    with pytest.raises(UserError) as raised:
        find_device("no-such-card", "input")
    message = str(raised.value)
    assert "'no-such-card'" in message and "'pulse'" in message and "input devices" in message
    assert "\n" not in message
    with pytest.raises(UserError, match="no audio device #999"):
        find_device(999, "output")


@pytest.mark.slow
def test_doctor_passes_on_the_pulse_device(pulse_env: dict[str, str]) -> None:
    findings = check("pulse", "pulse", rate_hz=RATE_HZ, period_samples=PERIOD_SAMPLES)
    for finding in findings:
        print(finding)
    assert all(f.ok for f in findings)
    assert any("full duplex works" in f.what for f in findings)


@pytest.mark.slow
def test_spine_devices_and_doctor_commands(pulse_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="spine")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["devices"])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert any(line.split()[:2] == [str(find_device("pulse", "input").index), "pulse"] for line in table.splitlines())
    args = parser.parse_args(["doctor", "--input", "pulse", "--output", "pulse"])
    assert args.func(args) == 0
    report = capsys.readouterr().out
    assert "✓ full duplex works" in report and "✗" not in report
    args = parser.parse_args(["doctor", "--input", "no-such-card"])
    assert args.func(args) == 1
    report = capsys.readouterr().out
    assert "✗ input: no audio input device matches 'no-such-card'" in report and "fix: pass --input" in report


@pytest.mark.slow
def test_doctor_without_any_device_says_how_to_find_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # A PulseAudio address where nothing listens (also stops libpulse from autospawning a daemon).
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/spine/pulse/native")
    if list_devices():
        pytest.skip("this machine has a sound card: the no-device case cannot be shown here")
    assert check(None, None) == [Finding(False, "no audio device found", NO_DEVICE_FIX)]
    with pytest.raises(UserError, match="no audio input device found: is the sound card connected"):
        find_device(None, "input")


def _ramped(signal: npt.NDArray[np.float64], ramp_samples: int = 80) -> npt.NDArray[np.float64]:
    """Fade in and out over 5 ms, so neither edge is a click (a click correlates with anything)."""
    window = np.ones(len(signal))
    window[:ramp_samples] = np.linspace(0.0, 1.0, ramp_samples)
    window[-ramp_samples:] = np.linspace(1.0, 0.0, ramp_samples)
    return signal * window


def _test_signal() -> tuple[Audio, dict[str, slice]]:
    """Silence, a 1 kHz tone burst, silence, a 200 Hz → 4 kHz chirp, then silence long enough to record the
    chirp back at up to 0.5 s of delay; whole periods. Returns it and where the tone and the chirp are."""
    t_tone = np.arange(int(0.25 * RATE_HZ)) / RATE_HZ
    tone = _ramped(0.5 * np.sin(2 * np.pi * 1000.0 * t_tone))
    t_chirp = np.arange(int(0.5 * RATE_HZ)) / RATE_HZ
    chirp = _ramped(0.5 * np.sin(2 * np.pi * (200.0 * t_chirp + (4000.0 - 200.0) / (2 * 0.5) * t_chirp**2)))
    gap = np.zeros(int(0.2 * RATE_HZ))
    tail = np.zeros(int(0.6 * RATE_HZ))
    signal = np.concatenate([gap, tone, gap, chirp, tail])
    signal = np.concatenate([signal, np.zeros(-len(signal) % PERIOD_SAMPLES)])
    tone_at, chirp_at = len(gap), 2 * len(gap) + len(tone)
    parts = {"tone": slice(tone_at, tone_at + len(tone)), "chirp": slice(chirp_at, chirp_at + len(chirp))}
    return np.round(signal * 32767).astype(np.int16), parts


def _normalised(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b) + 1e-12))


@pytest.mark.slow
def test_full_duplex_loopback_records_what_it_played(pulse_env: dict[str, str]) -> None:
    played, parts = _test_signal()
    recorded = np.zeros_like(played)
    tally = {"position": 0, "callbacks": 0, "input_overflows": 0, "output_underflows": 0}
    done = threading.Event()

    def callback(
        in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[bytes, int]:
        start = tally["position"]
        end = min(start + frame_count, len(played))
        tally["callbacks"] += 1
        tally["input_overflows"] += bool(status & pyaudio.paInputOverflow)
        tally["output_underflows"] += bool(status & pyaudio.paOutputUnderflow)
        if in_data is not None:
            recorded[start:end] = np.frombuffer(in_data, np.int16)[: end - start]
        out = played[start:end].tobytes() + bytes(2 * (frame_count - (end - start)))
        tally["position"] = end
        if end == len(played):
            done.set()
            return out, pyaudio.paComplete
        return out, pyaudio.paContinue

    pulse = find_device("pulse", "input")
    with portaudio() as pa:
        stream = pa.open(
            rate=RATE_HZ, channels=1, format=pyaudio.paInt16, input=True, output=True,
            input_device_index=pulse.index, output_device_index=pulse.index,
            frames_per_buffer=PERIOD_SAMPLES, stream_callback=callback,
        )  # fmt: skip
        try:
            finished = done.wait(timeout=len(played) / RATE_HZ + 10.0)
        finally:
            stream.stop_stream()
            stream.close()
    print(
        f"loopback: {tally['callbacks']} callbacks, {tally['input_overflows']} input overflows, "
        f"{tally['output_underflows']} output underflows"
    )
    assert finished, f"the stream stalled after {tally['position']} of {len(played)} samples"

    x, y = recorded.astype(np.float64), played.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(2 * len(x))))
    correlation = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(y, size)), size)[: len(x)]
    delay = int(np.argmax(correlation))  # the recording lags what was played: delays >= 0 only
    peak = _normalised(x[delay:], y[: len(x) - delay])
    at_delay = {name: _normalised(x[part.start + delay : part.stop + delay], y[part]) for name, part in parts.items()}
    print(
        f"loopback delay {delay} samples = {delay * 1000 / RATE_HZ:.1f} ms; normalised correlation {peak:.3f}; "
        + ", ".join(f"{name} {value:.3f}" for name, value in at_delay.items())
    )
    assert delay < RATE_HZ // 2, f"implausible delay {delay} samples"
    assert peak > 0.5
    assert all(value > 0.5 for value in at_delay.values()), at_delay


def _device(index: int, name: str, inputs: int, outputs: int, default: bool = False) -> DeviceInfo:
    rates = (16000, 48000)
    return DeviceInfo(
        index, name, "ALSA", inputs, outputs, 48000,
        rates if inputs else (), rates if outputs else (), default and inputs > 0, default and outputs > 0,
    )  # fmt: skip


CARD = [
    _device(0, "USB Audio Mic: - (hw:1,0)", 1, 0),
    _device(1, "bcm2835 Headphones: - (hw:0,0)", 0, 8),
    _device(2, "USB Audio Speaker: - (hw:2,0)", 0, 2),
    _device(3, "default", 32, 32, default=True),
]


def test_pick_by_part_of_a_name_in_one_direction() -> None:
    assert pick(CARD, "mic", "input").index == 0
    assert pick(CARD, "headphones", "output").index == 1
    assert pick(CARD, None, "output").index == 3
    assert pick(CARD, "DEFAULT", "input").index == 3  # an exact name wins over parts of longer names


def test_pick_refuses_what_it_cannot_choose() -> None:
    with pytest.raises(UserError, match=r"'usb audio' matches several audio output devices \(#2 .*\): give its"):
        pick([*CARD[:2], CARD[2], _device(4, "USB Audio DAC", 0, 2)], "usb audio", "output")
    with pytest.raises(UserError, match=r"#1 'bcm2835 Headphones: - \(hw:0,0\)' has no input channels"):
        pick(CARD, 1, "input")
    with pytest.raises(UserError, match="no audio input device found: is the sound card connected"):
        pick(CARD[1:3], None, "input")
    with pytest.raises(UserError, match="there is no default audio input device"):
        pick(CARD[:3], None, "input")


def test_device_table_aligns_columns_and_marks_defaults() -> None:
    lines = device_table(CARD)
    cells = [re.split(r"\s{2,}", line) for line in lines[:5]]
    assert cells[0] == ["#", "name", "host API", "in", "out", "default", "rate Hz", "records at kHz", "plays at kHz"]
    assert cells[1] == ["0", "USB Audio Mic: - (hw:1,0)", "ALSA", "1", "0", "-", "48000", "16 48", "-"]
    assert cells[4] == ["3", "default", "ALSA", "32", "32", "in/out", "48000", "16 48", "16 48"]
    assert len({line.index("ALSA") for line in lines[1:5]}) == 1  # one column
    assert lines[5].startswith("in/out: channels")
