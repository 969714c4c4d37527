"""The playback gate as a plain function on arrays: ops in, frames and reports out (invariants 3, 4 and 5).

No sound card and no threads: the test plays the audio side itself by calling `pull(n)` once per period, and
collects the gate's reports in a list (the inbox's `post` in the daemon).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from device.core.events import Event, PlaybackDrained, PlaybackStopped
from device.sim.playback import Frame, PlaybackGate

PERIOD = 10
FADE = 8


Report = PlaybackDrained | PlaybackStopped


def gate_with_reports(fade_samples: int = FADE) -> tuple[PlaybackGate, list[Report]]:
    """A gate whose reports are collected; the gate reports only the end of an epoch, nothing else."""
    reports: list[Report] = []

    def collect(event: Event) -> None:
        assert isinstance(event, PlaybackDrained | PlaybackStopped), event
        reports.append(event)

    return PlaybackGate(fade_samples, collect), reports


def const(samples: int, value: int) -> np.ndarray:
    return np.full(samples, value, np.int16)


def ramp(first: int, last: int) -> np.ndarray:
    return np.arange(first, last + 1, dtype=np.int16)


def frame_of(frame: Frame) -> tuple[list[int], list[int]]:
    """A frame as plain lists, so a whole frame is compared in one assert (and its dtypes checked once)."""
    assert (frame.audio.dtype, frame.epochs.dtype) == (np.dtype(np.int16), np.dtype(np.int32))
    return frame.audio.tolist(), frame.epochs.tolist()


SILENCE = ([0] * PERIOD, [0] * PERIOD)
# A constant 1000 faded over 8 samples: gain 1 - (i + 1) / 8, truncated toward zero; the last fade sample is 0.
FADED_1000 = [875, 750, 625, 500, 375, 250, 125, 0]


def test_queued_chunks_play_in_order_across_periods_with_their_epoch() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, ramp(1, 25))
    gate.queue(1, ramp(101, 110))
    frames = [frame_of(gate.pull(PERIOD)) for _ in range(4)]
    assert frames == [
        (list(range(1, 11)), [1] * 10),
        (list(range(11, 21)), [1] * 10),
        ([*range(21, 26), *range(101, 106)], [1] * 10),
        ([*range(106, 111), 0, 0, 0, 0, 0], [1] * 5 + [0] * 5),
    ]
    assert reports == []  # not finished: an underrun, not the end of the epoch
    assert gate.underrun_samples == 5


def test_an_idle_gate_plays_silence_without_counting_underruns() -> None:
    gate, reports = gate_with_reports()
    assert [frame_of(gate.pull(PERIOD)) for _ in range(3)] == [SILENCE] * 3
    assert (gate.underrun_samples, reports, gate.busy()) == (0, [], False)


def test_an_open_epoch_that_runs_dry_plays_silence_and_counts_the_underrun() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(3, 500))
    assert frame_of(gate.pull(PERIOD)) == ([500] * 3 + [0] * 7, [1] * 3 + [0] * 7)
    assert gate.underrun_samples == 7
    assert frame_of(gate.pull(PERIOD)) == SILENCE
    assert gate.underrun_samples == 17
    gate.queue(1, const(4, -200))  # the late audio plays where the stream resumes
    assert frame_of(gate.pull(PERIOD)) == ([-200] * 4 + [0] * 6, [1] * 4 + [0] * 6)
    assert (gate.underrun_samples, reports, gate.busy()) == (23, [], True)


def test_finish_reports_drained_exactly_once_with_the_exact_count() -> None:
    gate, reports = gate_with_reports()
    gate.open(3)
    gate.queue(3, const(12, 7))
    gate.queue(3, const(13, 9))
    gate.finish(3)
    seen = []
    for _ in range(6):
        frame_of(gate.pull(PERIOD))
        seen.append(list(reports))
    assert seen == [[], [], [PlaybackDrained(3, 25)]] + [[PlaybackDrained(3, 25)]] * 3
    assert (gate.underrun_samples, gate.busy()) == (0, False)  # the tail of a finished epoch is no underrun


def test_an_epoch_that_ends_exactly_on_a_period_boundary_drains_in_the_period_of_its_last_sample() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(2 * PERIOD, 5))
    gate.finish(1)
    assert frame_of(gate.pull(PERIOD)) == ([5] * 10, [1] * 10)
    assert reports == []
    assert frame_of(gate.pull(PERIOD)) == ([5] * 10, [1] * 10)
    assert reports == [PlaybackDrained(1, 20)]  # the last sample went to the device: drained, no period later
    assert frame_of(gate.pull(PERIOD)) == SILENCE
    assert reports == [PlaybackDrained(1, 20)]


def test_finish_with_nothing_queued_drains_with_zero_samples() -> None:
    gate, reports = gate_with_reports()
    gate.open(4)
    gate.finish(4)
    assert frame_of(gate.pull(PERIOD)) == SILENCE
    assert reports == [PlaybackDrained(4, 0)]


def test_cut_fades_out_over_fade_samples_then_silence_forever() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(50, 1000))
    assert frame_of(gate.pull(PERIOD)) == ([1000] * 10, [1] * 10)
    gate.cut(1)
    assert frame_of(gate.pull(PERIOD)) == ([*FADED_1000, 0, 0], [1] * FADE + [0, 0])
    # Played = 10 before the cut + 8 of fade; the 32 samples left in the queue never sound.
    assert reports == [PlaybackStopped(1, 18)]
    gate.queue(1, const(30, 1000))  # audio arriving for the cut epoch: dropped on arrival (invariant 4)
    gate.finish(1)
    assert [frame_of(gate.pull(PERIOD)) for _ in range(5)] == [SILENCE] * 5
    assert (reports, gate.underrun_samples, gate.busy()) == ([PlaybackStopped(1, 18)], 0, False)


def test_the_fade_of_a_constant_is_monotonically_non_increasing_and_ends_near_zero() -> None:
    fade_samples, period = 64, 160
    gate, reports = gate_with_reports(fade_samples)
    gate.open(1)
    gate.queue(1, const(1000, -12345))
    gate.pull(period)
    gate.cut(1)
    frame = gate.pull(period)
    fade = np.abs(frame.audio[:fade_samples].astype(np.int32))
    assert fade[0] < 12345
    assert bool(np.all(np.diff(fade) <= 0))
    assert int(fade[-1]) <= 12345 // fade_samples
    assert frame.epochs.tolist() == [1] * fade_samples + [0] * (period - fade_samples)
    assert frame.audio[fade_samples:].tolist() == [0] * (period - fade_samples)
    assert reports == [PlaybackStopped(1, period + fade_samples)]


def test_a_cut_with_less_than_the_fade_left_stops_when_the_audio_ends() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(12, 1000))
    gate.pull(PERIOD)
    gate.cut(1)
    assert frame_of(gate.pull(PERIOD)) == ([875, 750] + [0] * 8, [1, 1] + [0] * 8)
    assert reports == [PlaybackStopped(1, 12)]


def test_a_cut_of_an_epoch_that_ran_dry_stops_with_what_it_played() -> None:
    gate, reports = gate_with_reports()
    gate.open(2)
    gate.queue(2, const(4, 300))
    gate.pull(PERIOD)
    gate.cut(2)
    assert frame_of(gate.pull(PERIOD)) == SILENCE
    assert reports == [PlaybackStopped(2, 4)]


def test_at_most_one_period_of_a_cut_epoch_reaches_the_device() -> None:
    gate, _ = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(1000, 800))
    gate.pull(PERIOD)
    gate.pull(PERIOD)
    gate.cut(1)
    gate.queue(1, const(1000, 800))
    after_cut = [gate.pull(PERIOD) for _ in range(10)]
    tagged = [int(np.count_nonzero(frame.epochs == 1)) for frame in after_cut]
    assert tagged == [FADE] + [0] * 9


def test_audio_for_an_epoch_that_was_never_opened_never_plays() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(2, const(30, 2222))  # epoch 2 is not open: dropped
    gate.queue(1, const(5, 1111))
    gate.finish(2)
    gate.cut(2)
    frames = [frame_of(gate.pull(PERIOD)) for _ in range(3)]
    assert frames == [([1111] * 5 + [0] * 5, [1] * 5 + [0] * 5), SILENCE, SILENCE]
    assert reports == []  # neither the finish nor the cut of an unknown epoch reports anything


def test_audio_of_a_cut_epoch_never_plays_even_after_a_new_epoch_opens() -> None:
    gate, _ = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(15, 1000))
    gate.pull(PERIOD)
    gate.cut(1)
    gate.pull(PERIOD)
    gate.open(2)
    gate.queue(1, const(40, 1000))
    gate.queue(2, const(40, 2000))
    gate.queue(1, const(40, 1000))
    frames = [gate.pull(PERIOD) for _ in range(6)]
    assert [int(np.count_nonzero(frame.epochs == 1)) for frame in frames] == [0] * 6
    assert np.concatenate([frame.audio for frame in frames]).tolist() == [2000] * 40 + [0] * 20


def test_a_new_epoch_opened_in_the_period_of_a_cut_plays_after_the_old_ones_fade() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(50, 1000))
    gate.pull(PERIOD)
    gate.cut(1)
    gate.open(2)
    gate.queue(2, ramp(1, 12))
    assert frame_of(gate.pull(PERIOD)) == ([*FADED_1000, 1, 2], [1] * FADE + [2, 2])
    assert frame_of(gate.pull(PERIOD)) == ([*range(3, 13)], [2] * 10)
    assert reports == [PlaybackStopped(1, 18)]


def test_a_cut_of_an_epoch_that_already_drained_reports_stopped_with_its_final_count() -> None:
    # The race the core relies on: the drain is in the inbox when the spine decides to cut (a barge-in).
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(5, 42))
    gate.finish(1)
    gate.pull(PERIOD)
    gate.cut(1)
    assert frame_of(gate.pull(PERIOD)) == SILENCE
    assert reports == [PlaybackDrained(1, 5), PlaybackStopped(1, 5)]


def test_opening_an_epoch_while_another_plays_stops_the_old_one_at_once() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(30, 1000))
    gate.pull(PERIOD)
    gate.open(2)
    gate.queue(2, const(10, 2000))
    assert frame_of(gate.pull(PERIOD)) == ([2000] * 10, [2] * 10)
    assert reports == [PlaybackStopped(1, 10)]


def test_two_cuts_before_one_pull_report_both_epochs() -> None:
    gate, reports = gate_with_reports()
    gate.open(1)
    gate.queue(1, const(50, 1000))
    gate.pull(PERIOD)
    gate.cut(1)  # epoch 1 starts its fade at the next pull...
    gate.open(2)
    gate.queue(2, const(50, 2000))
    gate.cut(2)  # ...but epoch 2 is cut before that pull comes
    frames = [gate.pull(PERIOD) for _ in range(3)]
    tagged = {epoch: sum(int(np.count_nonzero(f.epochs == epoch)) for f in frames) for epoch in (1, 2)}
    # Each cut epoch reports its end exactly once, with the samples that carried its tag (invariant 5).
    assert sorted(reports, key=lambda r: r.epoch) == [
        PlaybackStopped(1, PERIOD + tagged[1]),
        PlaybackStopped(2, tagged[2]),
    ]


# ------------------------------------------------------------------------------------------ property test
#
# Random scripts of FSM-side ops interleaved with pulls. Opens always use a fresh epoch (the core never
# reopens one: commands.py), while queue/finish/cut name any small epoch, known or not. A small model of the
# gate's contract says which queued chunks may play; the frames and reports are checked against it.

# 0 stands for "the epoch opened last", drawn most often so that most ops hit the live epoch; 1..3 and 9 are
# older epochs or ones never opened.
EPOCHS = st.sampled_from([0, 0, 0, 0, 0, 1, 2, 3, 9])

OPS = st.one_of(
    st.just(("open", 0, 0)),
    st.tuples(st.just("queue"), EPOCHS, st.integers(0, 30)),
    st.tuples(st.just("finish"), EPOCHS, st.just(0)),
    st.tuples(st.just("cut"), EPOCHS, st.just(0)),
    st.just(("pull", 0, 0)),
    st.just(("pull", 0, 0)),
)


@dataclass
class Model:
    """What the contract allows: per epoch, the stream of accepted audio and when it was cut."""

    last_opened: int = 0
    streams: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    cut_before_pull: dict[int, int] = field(default_factory=dict)  # epoch -> index of the first pull after its cut
    cuts_of_ended: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def live(self, epoch: int, ended: set[int]) -> bool:
        return epoch == self.last_opened and epoch not in self.cut_before_pull and epoch not in ended


@st.composite
def scripts(draw: st.DrawFn) -> tuple[int, int, list[tuple[str, int, int]]]:
    period = draw(st.integers(4, 24))
    fade = draw(st.integers(1, period))  # the config keeps the fade within one period
    return period, fade, draw(st.lists(OPS, max_size=60))


@settings(max_examples=300, deadline=None)
@given(scripts())
def test_random_op_sequences_keep_the_gate_invariants(script: tuple[int, int, list[tuple[str, int, int]]]) -> None:
    period, fade, ops = script
    gate, reports = gate_with_reports(fade)
    model = Model()
    frames: list[Frame] = []
    for index, (op, which, size) in enumerate([*ops, *[("pull", 0, 0)] * 4]):
        epoch = which or model.last_opened or 1
        ended = {report.epoch for report in reports}
        if op == "open":
            model.last_opened += 1
            gate.open(model.last_opened)
        elif op == "queue":
            # Distinct values per chunk (never 0), so every played sample can be traced to its chunk.
            chunk = (500 * (index + 1) + np.arange(size)).astype(np.int16)
            if model.live(epoch, ended):
                model.streams[epoch].extend(chunk.tolist())
            gate.queue(epoch, chunk)
        elif op == "finish":
            gate.finish(epoch)
        elif op == "cut":
            if model.live(epoch, ended):
                model.cut_before_pull[epoch] = len(frames)
            elif epoch <= model.last_opened:  # already cut, drained or replaced by a newer open
                model.cuts_of_ended[epoch] += 1
            gate.cut(epoch)
        else:
            frames.append(gate.pull(period))

    audio = np.concatenate([f.audio for f in frames]) if frames else np.zeros(0, np.int16)
    epochs = np.concatenate([f.epochs for f in frames]) if frames else np.zeros(0, np.int32)
    pull_of = np.repeat(np.arange(len(frames)), period)
    assert audio[epochs == 0].tolist() == [0] * int(np.count_nonzero(epochs == 0))  # silence is silent

    for epoch in {int(e) for e in np.unique(epochs) if e}:
        played = audio[epochs == epoch].astype(np.int32)
        stream = np.array(model.streams[epoch][: len(played)], np.int32)
        # Only accepted audio plays, in queue order (invariant 4: nothing of a cut or unknown epoch's queue).
        assert len(played) == len(stream)
        cut_at = model.cut_before_pull.get(epoch, len(frames))
        faded = pull_of[epochs == epoch] >= cut_at
        assert played[~faded].tolist() == stream[~faded].tolist()
        assert bool(np.all((np.abs(played[faded]) <= stream[faded]) & (played[faded] >= 0)))
        # After a cut: at most the fade, and all of it in the one period that follows (invariant 3).
        assert int(np.count_nonzero(faded)) <= fade
        assert set(pull_of[epochs == epoch][faded].tolist()) <= {cut_at}

    by_epoch: dict[int, list[Report]] = defaultdict(list)
    for report in reports:
        assert isinstance(report, PlaybackDrained | PlaybackStopped)
        # Every report counts exactly the samples that carried the epoch's tag, fade included (invariant 5).
        assert report.played_samples == int(np.count_nonzero(epochs == report.epoch))
        by_epoch[report.epoch].append(report)
    for epoch, ends in by_epoch.items():
        first, later = ends[0], ends[1:]
        # An epoch ends once, drained or stopped. A later report only answers a cut that came after the end,
        # and it is a PlaybackStopped repeating the final count (the core commits heard text from it).
        assert all(type(r) is PlaybackStopped and r.played_samples == first.played_samples for r in later)
        assert len(later) <= model.cuts_of_ended[epoch]
