"""The audio devices PortAudio sees (through PyAudio): list them, and pick one by index or by name.

Devices are validated here, at the edge (docs/architecture.md, invariant 10): a device the user names that does
not exist, or that cannot record (or play), is a `UserError` that lists what does exist, in one line.

PortAudio's ALSA host API opens every ALSA PCM it knows when it initialises, to probe it, and ALSA and JACK
print each failure on stderr ("cannot find card '0'", "jack server is not running"). That noise comes from C
code writing to file descriptor 2, so `portaudio()` points fd 2 at /dev/null while PyAudio is in use and
restores it after. Device indices are PortAudio's: stable while the hardware does not change.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

# PyAudio ships neither type hints nor a py.typed marker; we keep its use behind the typed functions here.
import pyaudio  # type: ignore[import-untyped]

from device.errors import UserError

Direction = Literal["input", "output"]

PROBE_RATES_HZ = (16000, 22050, 44100, 48000)
"""The rates `list_devices` checks each device for (Spine runs at 16 kHz; cards commonly run at 44.1/48 kHz)."""

NO_DEVICE_FIX = (
    "is the sound card connected? `arecord -l` / `aplay -l` list them; on a Pi, enable the card in config.txt"
)


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device, with the rates it takes for 16-bit mono in each direction."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_rate_hz: int
    input_rates_hz: tuple[int, ...]
    """Those of PROBE_RATES_HZ it can record at (mono int16); empty if it has no input or is busy."""
    output_rates_hz: tuple[int, ...]
    """Those of PROBE_RATES_HZ it can play at (mono int16); empty if it has no output or is busy."""
    is_default_input: bool = False
    is_default_output: bool = False

    def channels(self, direction: Direction) -> int:
        return self.max_input_channels if direction == "input" else self.max_output_channels

    def rates_hz(self, direction: Direction) -> tuple[int, ...]:
        return self.input_rates_hz if direction == "input" else self.output_rates_hz

    def native_rate_hz(self, direction: Direction) -> int:
        """The rate to run the device at when it does not take Spine's: its default if it takes it."""
        rates = self.rates_hz(direction)
        if self.default_rate_hz in rates or not rates:
            return self.default_rate_hz
        return max(rates)

    @property
    def label(self) -> str:
        return f"#{self.index} {self.name!r}"


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (C libraries' noise), then restore it.

    Process-wide while it lasts: keep it around PortAudio calls only.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


@contextmanager
def portaudio() -> Iterator[Any]:
    """An initialised `pyaudio.PyAudio` (typed Any: PyAudio is untyped), terminated on exit, stderr quiet."""
    with quiet_stderr():
        pa = pyaudio.PyAudio()
        try:
            yield pa
        finally:
            pa.terminate()


def supports(pa: Any, device: int, direction: Direction, rate_hz: int) -> bool:
    """Whether PortAudio can open `device` for mono int16 in `direction` at `rate_hz`."""
    try:
        if direction == "input":
            pa.is_format_supported(rate_hz, input_device=device, input_channels=1, input_format=pyaudio.paInt16)
        else:
            pa.is_format_supported(rate_hz, output_device=device, output_channels=1, output_format=pyaudio.paInt16)
    except ValueError:  # PyAudio's way of saying "not supported" (or "busy": the open failed)
        return False
    return True


def _default_index(pa: Any, direction: Direction) -> int | None:
    try:
        info = pa.get_default_input_device_info() if direction == "input" else pa.get_default_output_device_info()
    except OSError:  # "No Default Input Device Available"
        return None
    return int(info["index"])


def devices_of(pa: Any) -> list[DeviceInfo]:
    """Every device of an open PortAudio session, probed for PROBE_RATES_HZ in each direction it has."""
    default_input, default_output = _default_index(pa, "input"), _default_index(pa, "output")
    found = []
    for index in range(int(pa.get_device_count())):
        info = pa.get_device_info_by_index(index)
        inputs, outputs = int(info["maxInputChannels"]), int(info["maxOutputChannels"])
        found.append(
            DeviceInfo(
                index=index,
                name=str(info["name"]),
                host_api=str(pa.get_host_api_info_by_index(info["hostApi"])["name"]),
                max_input_channels=inputs,
                max_output_channels=outputs,
                default_rate_hz=round(float(info["defaultSampleRate"])),
                input_rates_hz=tuple(r for r in PROBE_RATES_HZ if inputs and supports(pa, index, "input", r)),
                output_rates_hz=tuple(r for r in PROBE_RATES_HZ if outputs and supports(pa, index, "output", r)),
                is_default_input=index == default_input,
                is_default_output=index == default_output,
            )
        )
    return found


def list_devices() -> list[DeviceInfo]:
    """Every audio device PortAudio sees, with the rates each takes (opens each device briefly to probe)."""
    with portaudio() as pa:
        return devices_of(pa)


def find_device(spec: str | int | None, direction: Direction) -> DeviceInfo:
    """The device `spec` names for `direction`: an index, a case-insensitive part of its name, or None for the
    system default. Raises `UserError` listing the devices of that direction when there is no such device."""
    return pick(list_devices(), spec, direction)


def pick(devices: Sequence[DeviceInfo], spec: str | int | None, direction: Direction) -> DeviceInfo:
    """`find_device` over an already listed set of devices."""
    candidates = [d for d in devices if d.channels(direction) > 0]
    if not candidates:
        raise UserError(f"no audio {direction} device found: {NO_DEVICE_FIX}")
    available = f"{direction} devices: {', '.join(d.label for d in candidates)} (`spine devices` lists them)"
    if spec is None:
        for device in candidates:
            if device.is_default_input if direction == "input" else device.is_default_output:
                return device
        raise UserError(f"there is no default audio {direction} device: name one; {available}")
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        by_index = [d for d in devices if d.index == index]
        if not by_index:
            raise UserError(f"there is no audio device #{index}; {available}")
        if by_index[0].channels(direction) == 0:
            raise UserError(f"audio device {by_index[0].label} has no {direction} channels; {available}")
        return by_index[0]
    wanted = spec.strip().casefold()
    exact = [d for d in candidates if d.name.casefold() == wanted]
    if exact:
        return exact[0]
    matches = [d for d in candidates if wanted in d.name.casefold()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        several = ", ".join(d.label for d in matches)
        raise UserError(f"{spec!r} matches several audio {direction} devices ({several}): give its index")
    raise UserError(f"no audio {direction} device matches {spec!r}; {available}")
