"""User speech from the real espeak-ng: non-silent, plausible, deterministic, with helpful voice errors."""

from __future__ import annotations

import numpy as np
import pytest

from device.errors import UserError
from device.sim.speech import available_voices, synthesize


def test_hello_world_is_plausible_speech_at_16_khz() -> None:
    samples = synthesize("hello world")
    assert samples.dtype == np.int16
    assert samples.ndim == 1
    assert 0.5 <= samples.size / 16000 <= 3.0
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert rms > 300.0  # about -40 dBFS: clearly not silence


def test_rate_sets_the_length() -> None:
    at_16k = synthesize("hello world", rate_hz=16000)
    at_8k = synthesize("hello world", rate_hz=8000)
    assert abs(at_8k.size * 2 - at_16k.size) <= 2


def test_same_input_gives_identical_samples() -> None:
    first = synthesize("hello world")
    first[:] = 0  # callers own their copy: this must not leak into the next result
    assert np.array_equal(synthesize("hello world"), synthesize("hello world"))
    assert np.any(synthesize("hello world") != 0)


def test_gain_scales_the_level() -> None:
    loud = synthesize("hello world").astype(np.float64)
    quiet = synthesize("hello world", gain_db=-20.0).astype(np.float64)
    ratio_db = 20 * np.log10(np.sqrt(np.mean(quiet**2)) / np.sqrt(np.mean(loud**2)))
    assert ratio_db == pytest.approx(-20.0, abs=0.1)


def test_unknown_voice_names_it_and_lists_english_voices() -> None:
    with pytest.raises(UserError) as caught:
        synthesize("hello", voice="xx-nope")
    message = caught.value.message
    assert "'xx-nope'" in message
    assert "en-us" in message
    assert "en-gb" in message
    assert "espeak-ng --voices" in message


def test_variant_of_a_known_voice_works() -> None:
    female = synthesize("hello world", voice="en-us+f3")
    assert 0.5 <= female.size / 16000 <= 3.0
    assert not np.array_equal(female[: min(female.size, 8000)], synthesize("hello world")[:8000])


def test_variant_of_an_unknown_voice_is_refused() -> None:
    with pytest.raises(UserError, match="xx-nope\\+f3"):
        synthesize("hello", voice="xx-nope+f3")


def test_available_voices_holds_languages_and_voice_files() -> None:
    voices = available_voices()
    assert {"en-us", "en-gb", "gmw/en-US", "en"} <= set(voices)
    assert "variant" not in voices


def test_text_starting_with_a_dash_is_spoken_not_parsed_as_an_option() -> None:
    assert synthesize("-hello").size / 16000 >= 0.3
