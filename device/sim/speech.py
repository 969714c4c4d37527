"""The scripted user's voice, synthesised by espeak-ng.

espeak-ng is deliberately a different TTS from the assistant's Piper: a wake word or VAD model that only
fired on Piper's voice would otherwise pass the simulation and fail on people. Its output is deterministic,
so a scene sounds the same on every run; synthesis is memoised per process because scenes repeat phrases.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import subprocess

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from device.errors import UserError

_INSTALL_HINT = "install it (`apt-get install espeak-ng`, or run `make demo`, which installs it)"


def synthesize(text: str, voice: str = "en-us", rate_hz: int = 16000, gain_db: float = 0.0) -> npt.NDArray[np.int16]:
    """`text` spoken by espeak-ng `voice`, mono int16 at `rate_hz`, scaled by `gain_db` (clipped)."""
    if rate_hz <= 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    check_voice(voice)
    # A fresh copy each call: the cached bytes stay immutable whatever the caller does with its array.
    return np.frombuffer(_synthesize_bytes(text, voice, rate_hz, gain_db), dtype=np.int16).copy()


def check_voice(voice: str) -> None:
    """Raise a `UserError` unless espeak-ng knows `voice`; `base+variant` is valid when `base` is."""
    voices = available_voices()
    base = voice.split("+", 1)[0]
    # espeak-ng matches voice names without regard to case ("EN-US" works).
    if base.lower() in {name.lower() for name in voices}:
        return
    english = sorted({name for name in voices if name.lower().startswith("en") and "/" not in name})
    raise UserError(
        f"unknown espeak-ng voice {voice!r}; English voices: {', '.join(english)} "
        "(add a variant as in `en-us+f3`; `espeak-ng --voices` lists all voices)"
    )


@functools.lru_cache(maxsize=1)
def available_voices() -> tuple[str, ...]:
    """Every name `espeak-ng -v` accepts: language codes, voice files and the other languages they cover."""
    listing = _run_espeak(["--voices"]).decode("utf-8", errors="replace")
    names: set[str] = set()
    for line in listing.splitlines()[1:]:  # the first line is the column header
        # Columns: Pty, Language, Age/Gender, VoiceName, File, Other Languages ("(en 10)(en-gb 3)").
        columns = line.split()
        if len(columns) < 5:
            continue
        names.update((columns[1], columns[4]))
        names.update(re.findall(r"\(([^\s()]+) \d+\)", line))
    return tuple(sorted(names))


@functools.lru_cache(maxsize=256)
def _synthesize_bytes(text: str, voice: str, rate_hz: int, gain_db: float) -> bytes:
    # The text goes in on stdin, not argv: a text starting with "-" would otherwise be read as an option.
    wav = _run_espeak(["-v", voice, "--stdout"], stdin=text.encode("utf-8"))
    source_rate_hz, samples = _parse_wav(wav)
    signal = samples.astype(np.float64)
    if source_rate_hz != rate_hz and signal.size:
        common = math.gcd(rate_hz, source_rate_hz)
        signal = resample_poly(signal, rate_hz // common, source_rate_hz // common)
    signal *= 10.0 ** (gain_db / 20.0)
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16).tobytes()


def _run_espeak(arguments: list[str], stdin: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(["espeak-ng", *arguments], input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError(f"espeak-ng is not installed; {_INSTALL_HINT}") from None
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", errors="replace").strip() or f"exit status {result.returncode}"
        raise UserError(f"espeak-ng {' '.join(arguments)} failed: {detail}")
    return result.stdout


def _parse_wav(wav: bytes) -> tuple[int, npt.NDArray[np.int16]]:
    """(rate_hz, mono int16 samples) of espeak-ng's WAV.

    Not the `wave` module: writing to a pipe, espeak-ng cannot seek back to fill in the sizes, so the RIFF
    and data chunk sizes are placeholders (0x7ffff000-ish); the data simply runs to the end of the stream.
    """
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise UserError("espeak-ng did not produce a WAV file on --stdout")
    position = 12
    rate_hz: int | None = None
    while position + 8 <= len(wav):
        chunk_id, chunk_size = struct.unpack_from("<4sI", wav, position)
        body = position + 8
        if chunk_id == b"fmt ":
            audio_format, channels, rate_hz, _, _, bits = struct.unpack_from("<HHIIHH", wav, body)
            if (audio_format, channels, bits) != (1, 1, 16):
                raise UserError(f"espeak-ng produced an unexpected WAV format ({channels} ch, {bits} bit)")
        elif chunk_id == b"data":
            if rate_hz is None:
                break
            # min() by slicing: the placeholder size is larger than the stream, a real one is exact.
            data = wav[body : body + chunk_size]
            return rate_hz, np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
        position = body + chunk_size + (chunk_size & 1)
    raise UserError("espeak-ng produced a WAV file without a format or data chunk")
