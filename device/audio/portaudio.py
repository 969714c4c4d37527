"""The few PortAudio calls the duplex stream needs, through ctypes: a full-duplex int16 callback stream opened
at a latency we choose.

Why not a binding from PyPI: PyAudio opens every stream at the device's default low latency and cannot be asked
for another (device/audio/stream.py says why the latency must be able to rise); sounddevice can, but hands its
callback to PortAudio through a cffi closure, which needs memory that is writable and executable at once, and
the service runs with `MemoryDenyWriteExecute=yes` (systemd/spine.service): measured under PR_SET_MDWE, cffi's
callback fails with MemoryError while a ctypes callback (libffi's closure allocator) works. PyAudio still lists
the devices and runs `spine doctor` (device/audio/devices.py, doctor.py); both use the same libportaudio.so.2,
so device indices agree.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

PA_INT16 = 0x00000008
PA_NO_DEVICE = -1
PA_CONTINUE = 0
PA_ABORT = 2
INPUT_OVERFLOW = 0x2
OUTPUT_UNDERFLOW = 0x4
LIBRARY = "libportaudio.so.2"  # by soname: the dynamic loader finds it (no ldconfig run, no compiler)


class PortAudioError(OSError):
    """A PortAudio call failed; the message is PortAudio's own text."""


class _StreamParameters(ctypes.Structure):
    _fields_ = [
        ("device", ctypes.c_int),
        ("channelCount", ctypes.c_int),
        ("sampleFormat", ctypes.c_ulong),
        ("suggestedLatency", ctypes.c_double),
        ("hostApiSpecificStreamInfo", ctypes.c_void_p),
    ]


class _StreamInfo(ctypes.Structure):
    _fields_ = [
        ("structVersion", ctypes.c_int),
        ("inputLatency", ctypes.c_double),
        ("outputLatency", ctypes.c_double),
        ("sampleRate", ctypes.c_double),
    ]


class _DeviceInfo(ctypes.Structure):
    _fields_ = [
        ("structVersion", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("hostApi", ctypes.c_int),
        ("maxInputChannels", ctypes.c_int),
        ("maxOutputChannels", ctypes.c_int),
        ("defaultLowInputLatency", ctypes.c_double),
        ("defaultLowOutputLatency", ctypes.c_double),
        ("defaultHighInputLatency", ctypes.c_double),
        ("defaultHighOutputLatency", ctypes.c_double),
        ("defaultSampleRate", ctypes.c_double),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p
)

PeriodCallback = Callable[[npt.NDArray[np.int16], npt.NDArray[np.int16], int], None]
"""(mic, speaker to fill, status flags): one period; the arrays are valid only during the call."""


def _library() -> Any:
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as error:
        raise PortAudioError(f"cannot load PortAudio ({error}): install libportaudio2 (scripts/setup.sh)") from None
    lib.Pa_GetErrorText.restype = ctypes.c_char_p
    lib.Pa_GetDeviceInfo.restype = ctypes.POINTER(_DeviceInfo)
    lib.Pa_GetStreamInfo.restype = ctypes.POINTER(_StreamInfo)
    lib.Pa_GetStreamInfo.argtypes = [ctypes.c_void_p]
    for name in ("Pa_StartStream", "Pa_AbortStream", "Pa_CloseStream", "Pa_IsStreamActive"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    return lib


class DuplexPortAudio:
    """One PortAudio full-duplex mono int16 stream with a callback; PortAudio initialised while it exists."""

    def __init__(
        self,
        rate_hz: int,
        period_samples: int,
        devices: tuple[int | None, int | None],
        latency_s: float | None,
        on_period: PeriodCallback,
    ) -> None:
        """`latency_s`: the suggested input and output latency; None: each device's default low latency.
        Raises PortAudioError with PortAudio's text if the stream cannot be opened."""
        self._lib = _library()
        self._on_period = on_period
        self._stream = ctypes.c_void_p()
        self._trampoline = _CALLBACK(self._call)  # kept alive as long as the stream: PortAudio holds the pointer
        self.failure: str | None = None
        self._check(self._lib.Pa_Initialize(), "initialise PortAudio")
        self._initialised = True
        try:
            inputs = self._parameters(devices[0], latency_s, "input")
            outputs = self._parameters(devices[1], latency_s, "output")
            opened = self._lib.Pa_OpenStream(
                ctypes.byref(self._stream), ctypes.byref(inputs), ctypes.byref(outputs),
                ctypes.c_double(rate_hz), ctypes.c_ulong(period_samples), ctypes.c_ulong(0), self._trampoline, None,
            )  # fmt: skip
            self._check(opened, "open the stream")
        except PortAudioError:
            self.close()
            raise
        info = self._lib.Pa_GetStreamInfo(self._stream).contents
        self.input_latency_s = float(info.inputLatency)
        self.output_latency_s = float(info.outputLatency)

    def start(self) -> None:
        self._check(self._lib.Pa_StartStream(self._stream), "start the stream")

    def abort(self) -> None:
        """Stops at once, dropping what is queued for the speaker. Never Pa_StopStream: it drains the output
        (snd_pcm_drain), which takes up to the output latency and on ALSA's PulseAudio plugin can block for good
        (a drain while the PCM is not running: known to mumble, baresip, miniaudio); a `spine run` whose loop
        round sat in it never saw its SIGINT (CI, dc63bab)."""
        self._check(self._lib.Pa_AbortStream(self._stream), "abort the stream")

    @property
    def active(self) -> bool:
        active = int(self._lib.Pa_IsStreamActive(self._stream))
        self._check(min(active, 0), "ask whether the stream runs")
        return active == 1

    def close(self) -> None:
        """Aborts (see `abort`: no drain), closes and lets PortAudio go (its last user terminated: the next open
        sees devices afresh)."""
        if self._stream.value:
            self._lib.Pa_AbortStream(self._stream)
            self._lib.Pa_CloseStream(self._stream)
            self._stream = ctypes.c_void_p()
        if self._initialised:
            self._initialised = False
            self._lib.Pa_Terminate()

    _initialised = False

    def _parameters(self, device: int | None, latency_s: float | None, direction: str) -> _StreamParameters:
        if device is None:
            device = int(getattr(self._lib, f"Pa_GetDefault{direction.capitalize()}Device")())
        if device == PA_NO_DEVICE:
            raise PortAudioError(f"PortAudio has no default {direction} device")
        info = self._lib.Pa_GetDeviceInfo(device)
        if not info:
            raise PortAudioError(f"PortAudio has no device {device}")
        low = info.contents.defaultLowInputLatency if direction == "input" else info.contents.defaultLowOutputLatency
        return _StreamParameters(device, 1, PA_INT16, low if latency_s is None else latency_s, None)

    def _check(self, code: int, doing: str) -> None:
        if code < 0:
            text = self._lib.Pa_GetErrorText(code)
            raise PortAudioError(f"cannot {doing}: {text.decode(errors='replace') if text else code}")

    def _call(self, mic: int | None, out: int | None, frames: int, _time: int | None, flags: int, _user: Any) -> int:
        """PortAudio's thread: the period as arrays over PortAudio's own buffers (no copy), then `on_period`."""
        try:
            self._on_period(_samples(mic, frames), _samples(out, frames), flags)
        except BaseException as error:  # a callback must not raise into C: say it and end the stream
            self.failure = f"{type(error).__name__}: {error}"
            return PA_ABORT
        return PA_CONTINUE


def _samples(address: int | None, frames: int) -> npt.NDArray[np.int16]:
    """An array over PortAudio's buffer at `address` (ctypes caches the array type per length); zeros if none."""
    if not address:
        return np.zeros(frames, np.int16)
    return np.frombuffer(memoryview((ctypes.c_int16 * frames).from_address(address)), np.int16)
