"""Short commands over the assistant's own echo: the ASR's command pass (device/engines/asr.py).

The slow test runs a fixed slice of scripts/make_command_corpus.py (espeak-ng users talking over a Piper or
espeak-ng reply in the simulated room, through the echo canceller, cold and warm) and bounds how many stop
phrases come out as a stop and how many short requests do not, a little under what the whole corpus measured.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from device.core.memory import is_stop_phrase
from device.core.states import DEFAULT_STOP_PHRASES
from device.engines import asr as asr_module
from device.engines.asr import COMMAND_MAX_SAMPLES, WhisperAsr

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_command_corpus.py"


def _corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_command_corpus", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def asr(models_dir: Path) -> WhisperAsr:
    return WhisperAsr(models_dir / "asr/ggml-tiny.en.bin", threads=1)


def test_command_words_ignore_case_punctuation_and_a_leading_wake_phrase() -> None:
    words = asr_module._command_words
    assert words("Hey, Jarvis. Stop!") == "stop"
    assert words("Never mind.") == "never mind"
    assert words("Stop the timer.") == "stop the timer"
    assert words("Hey") == ""


def test_repeated_sentences_collapse_and_others_stay() -> None:
    collapse = asr_module._collapse_repeats
    assert collapse("Stop. Stop. Stop.") == "Stop."
    assert collapse("Never mind. Never mind.") == "Never mind."
    assert collapse("Stop. Tell me a story.") == "Stop. Tell me a story."
    assert collapse("What time is it?") == "What time is it?"


def test_a_letter_stuck_in_a_loop_is_no_speech_and_a_short_stutter_stays() -> None:
    loop = asr_module._LETTER_LOOP
    assert loop.sub("", "J-j-j-j-j-j-j-j-j-j-j-j-j-j-j-j-j-").strip() == ""
    assert loop.sub("", "What time is it? J-j-j-j-j").strip() == "What time is it?"
    assert loop.sub("", "I-I think so.") == "I-I think so."
    assert loop.sub("", "A-B-C-D.") == "A-B-C-D."


@pytest.mark.slow
def test_is_command_accepts_only_a_command(asr: WhisperAsr) -> None:
    assert asr.is_command("Stop.")
    assert asr.is_command("Hey Jarvis, stop.")
    assert asr.is_command("be quiet")
    assert not asr.is_command("Stop the timer.")
    assert not asr.is_command("Top.")
    assert not asr.is_command("")


@pytest.mark.slow
def test_stop_phrases_over_echo_stop_and_short_requests_do_not(asr: WhisperAsr) -> None:
    corpus = _corpus_module()
    # A fixed slice: every other case of the 2-repeat corpus (15 stop phrases, 18 requests). Measured on it: 11 of
    # the 15 stop phrases come out as a stop (6 without the command pass), and no request does; one of the
    # requests ("What's the date?" under an echo 5 dB louder) is read "Stop." by the command pass, at a lower
    # confidence than its free reading, so it stays a request only through the confidence rule.
    cases = list(corpus.corpus(repeats=2, step=2))
    stops = [case for case in cases if case.is_stop]
    requests = [case for case in cases if not case.is_stop]
    heard = {case.name: asr.transcribe(case.audio) for case in cases}
    recognised = sum(is_stop_phrase(heard[case.name], DEFAULT_STOP_PHRASES) for case in stops)
    false_stops = [heard[case.name] for case in requests if is_stop_phrase(heard[case.name], DEFAULT_STOP_PHRASES)]
    assert false_stops == []
    assert recognised >= BOUND_STOPS_RECOGNISED, {case.name: heard[case.name] for case in stops}


BOUND_STOPS_RECOGNISED = 10


@pytest.mark.slow
def test_the_command_pass_costs_one_short_decode(asr: WhisperAsr) -> None:
    corpus = _corpus_module()
    case = corpus.make_case(0, "Stop.", True, 9)
    assert len(case.audio) <= COMMAND_MAX_SAMPLES
    asr.transcribe(case.audio)  # warm the caches
    # CPU time, not wall time: with one thread it is the two decodes' cost whatever else the machine runs.
    # Measured over the 2-repeat corpus: 600 ms median, 857 ms at most (288 / 393 ms with the free pass only).
    started_s = time.process_time()
    asr.transcribe(case.audio)
    assert time.process_time() - started_s < 1.5
    assert np.array_equal(case.audio, corpus.make_case(0, "Stop.", True, 9).audio)  # the corpus is deterministic
