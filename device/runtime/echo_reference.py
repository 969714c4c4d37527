"""Echo the reference explains: is there anything in the raw microphone that the assistant's own playback cannot
account for? A double-talk detector that does not depend on the echo canceller having converged.

Why. Spine knows exactly what it played, sample by sample. The echo of it reaches the microphone later (the
delay) and filtered by the room (a gain per frequency band that stays put while the device does), so in each
band the echo can be no louder than the recent reference times that band's coupling. The user's voice is another
talker: speech is sparse in time and frequency, so while the user talks some bands hold far more energy than the
played reference can explain, even when the echo is as loud as the user overall. AEC3 needs seconds of playback
before its estimate can be trusted (and its start-up suppressor mutes the user too); this needs only the coupling,
which a short start-up sound (or the first half second of any answer) measures, and it keeps working when the echo
path shifts by a few milliseconds (an xrun), because it compares envelopes over a window of delays.

How, per 32 ms chunk (the voice detector's chunk):
* the raw mic chunk's energy in `BAND_EDGES_HZ` bands (a Hann-windowed FFT);
* the reference's band energies over the same 32 ms, one frame per audio period, kept for `MAX_DELAY_MS`; the
  predicted echo of a band is the largest reference energy over the delays the echo may have (all of 0 to
  `MAX_DELAY_MS` until hearing knows the delay, then that delay -`DELAY_SLACK_MS`/+`TAIL_MS`: the room's
  reverberation lengthens the echo, never advances it), what played longer ago discounted by the room's decay,
  times the band's coupling;
* the decay is measured on the first sound's echo (`_RoomDecay`: the start-up sound, when nobody speaks yet),
  from a reverberant living room's to a dry loop's; until then the reverberant one, the safe side;
* the delay comes from hearing (tracked on the waveform, device/runtime/echo_delay.py, or the canceller's); until
  either has one, `_DelayFinder` reads it off the envelopes of the start-up sound
  (the lag at which the reference's band energies best follow the mic's), so the sharper prediction around the
  delay is calibrated on the start-up sound, before the first answer;
* coupling per band, in dB, learnt from chunks in which the reference can explain the mic (the first
  `CALIBRATION_CHUNKS` counted at once — the start-up sound, when nobody speaks yet — then a slow running mean
  over chunks the model explains, so the user's voice does not teach it, and only while hearing trusts the echo
  path: after an xrun the echo is not where the model looks, and what it would learn there is noise);
* a band is *unexplained* when the mic exceeds the predicted echo plus the room's noise by `MARGIN_DB`; the chunk
  holds someone other than the speaker when at least `MIN_UNEXPLAINED_BANDS` bands are.

Pure numpy on one thread (the FSM thread); about 0.1 ms per chunk.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.rates import SPINE_RATE_HZ as RATE_HZ

Audio = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]

CHUNK_SAMPLES = 512
"""32 ms: the voice detector's chunk, so each verdict belongs to one voice probability."""

BAND_EDGES_HZ: tuple[float, ...] = tuple(float(f) for f in np.geomspace(200.0, 7200.0, 17))
"""16 bands, evenly spaced on a log scale over the speech range: formants and their harmonics land in few of
them at a time, so another talker shows up as a few bands far above the echo."""

MAX_DELAY_MS = 500.0
"""The longest echo delay considered while the delay is unknown (AEC3's own range), unless longer ones were seen
(`set_delay_ms`'s `widest_ms`)."""
LONGEST_DELAY_MS = 1500.0
"""The longest delay the model can be told of (the delay tracker's range): the history reaches this far back."""
DELAY_SLACK_MS = 20.0
"""Once the delay is known: how much earlier than it the echo may arrive (an xrun shifts it by a period)."""
EXACT_MAX_UPPER_DB = 1.5
"""Where the echo's delay is settled, the reference's 32 ms at exactly that delay predicts the echo too (no plateau
around the delay, no reverberation); it judges only where it explains the echo this closely: in the median band,
nine chunks in ten of the mic stay within this much above it (`_Coupling.upper_db`; not the median spread, which
reverberation's rare loud tails leave small; not every band, where a user's talk-over can fill the tenth): a
stable, linear, dry echo path, such as a sound server's loop or a line-level path.
There the plateau +-20-30 ms around the delay takes the loudest syllable of the last 80 ms for the echo of a
quiet moment: measured on a PulseAudio null sink at 0 dB, its coupling spread 3.3-5.4 dB per band (margins 10-16
dB), and "Stop." 3 dB under the story stood out in 0-3 bands and was missed, though each chunk of its /s/ was
17-27 dB above the echo in 12-13 bands. In a room, reverberation spreads the exact prediction's ratio far more,
and the plateau judges as before."""
DECAY_CANDIDATES_DB_PER_MS: tuple[float, ...] = (0.1, 0.15, 0.2, 0.3, 0.45, 0.6)
"""How fast the echo of a played sound may die away after its direct path, safest first: 60 dB in 0.6 s (a
reverberant living room) down to 0.1 s (a dry loop). The prediction starts with the first; `_RoomDecay` tests
them all on the first sound's echo and takes one at most `DECAY_STEEPEST_DB_PER_MS`. Why measure it: a prediction
that decays slower than the room over-predicts the echo after every loud syllable, and a user no louder than that
tail is taken for echo. On a PulseAudio null sink at 0 dB (a dry loop) the reverberant decay found 1 of 5 replayed
talk-overs, 0.3 found 5 of 5 with no false hint; in the echo suite's RT60 0.6 s rooms a fixed 0.3 cut the story on
its own echo (two echo-only scenes: 1 and 2 cuts), and 0.15 paused it three times."""
DECAY_STEEPEST_DB_PER_MS = 0.3
"""The steepest decay ever used (the one measured on the null sink); steeper candidates only test the room."""
DECAY_SAFETY_STEPS = 3
"""The room's decay is taken this many candidates safer than the first its echo outlasted: the real tail starts
below the prediction (the direct sound is louder), so a candidate only a little steeper than the room fails late,
when the tail may be under the noise. In RT60 0.6 s rooms (0.1 dB/ms) 0.15 passed; in an RT60 0.5 s room (0.12)
0.2 passed and 0.3 failed."""
DECAY_DB_PER_MS = DECAY_CANDIDATES_DB_PER_MS[0]
"""The decay assumed until the room's is measured: the safest."""
DECAY_TEST_DB = 12.0
"""A chunk tests a candidate where the safest predicts this much more echo than the candidate does (in at least
`MIN_UNEXPLAINED_BANDS` bands, above the noise): the margin, plus the room's direct-to-reverberant ratio (~6 dB
on a device whose mic sits next to its speaker) by which the real tail starts below the prediction."""
DECAY_MIN_TESTS = 5
"""Tests a candidate needs before it can be taken. The start-up sound's echo in an echo-suite room 4 dB under
the user with noise at -50 dBFS tested the steepest twice at most, and every candidate passed: the story, 11 dB
louder, then rang on above a 0.3 dB/ms prediction in rooms of RT60 0.4-0.5 s (21 self-interruptions in the suite).
On the null sink the steepest was tested 20-21 times, in a dry simulated room 7."""
TAIL_MS = 600.0
"""How long after its direct path a played sound is still considered (by then it decayed 60 dB)."""

MARGIN_DB = 6.0
"""How far above the predicted echo (plus noise) a band must be to be unexplained: above the spread of the
echo's band energy around its prediction (measured ~3-5 dB), so the echo alone rarely exceeds it."""
DISTORTION_DB = -23.0
"""Echo expected in every band relative to the loudest predicted band: a small speaker driven near full scale
soft-clips, and its harmonics fall where the reference has nothing. Measured on a tanh speaker with its knee at
-12 dBFS (scenes/hard_room.toml): without this term its distortion alone looked like a user in 3 bands, at -25 dB
it still cut its own story; at -22 dB a user as loud as the echo was found 360 ms late instead of within 200 ms
(tests/test_echo_reference.py). A narrow window: a floor that grows with how hard the speaker is driven would
be the better model."""
MIN_UNEXPLAINED_BANDS = 3
"""Bands that must be unexplained in one chunk: one band can be a resonance the calibration missed."""

MIN_CALIBRATED_BANDS = 8
"""Bands with a measured coupling needed before any verdict counts (a quiet room leaves the top bands of a soft
voice below the noise: those are never judged)."""
CALIBRATION_CHUNKS = 20
"""Echo chunks (0.64 s) a band must have seen before it is judged at all; until then every chunk with echo in
the band teaches it (the start-up sound, or the first words of the first answer, when nobody talks yet)."""
COUPLING_WINDOW_CHUNKS = 256
"""How much echo (8 s) the coupling's median looks back over: long enough that a user talking over part of it
does not move it, short enough to follow the speaker's volume."""
EXACT_LAGS_MS: tuple[float, ...] = (-2.5, 0.0, 5.0, 10.0)
"""The exact prediction is the loudest of the reference's 32 ms at these offsets from the delay: a room's response
smears the echo over its first milliseconds (a dry simulated room, RT60 0.01 s, had chunks of echo alone above
the prediction at the delay alone), and the tracked delay may be a sample or two early."""
EXACT_MIN_CHUNKS = COUPLING_WINDOW_CHUNKS
"""Echo chunks (8 s, most of it speech after a start-up sound) each band must have seen before the exact prediction
may judge: with half of that, a dry simulated room (RT60 0.01 s) still had a chunk of echo alone taken for
someone else."""
UPPER_QUANTILE = 0.9
"""`_Coupling.upper_db`'s quantile: high enough to see reverberation's tails, low enough that a user talking over
a tenth of the echo does not count."""
MEDIAN_REFRESH_CHUNKS = 8
"""Once a band is calibrated, its median and spread are recomputed every this many chunks (0.26 s)."""
SPREAD_FACTOR = 3.0
"""A band is unexplained when it is above the coupling by `SPREAD_FACTOR` times the ratio's median absolute
deviation, or by `MARGIN_DB`, whichever is more: a room whose echo varies more needs a wider margin."""

DELAY_FORGET_CHUNKS = 64
"""The delay finder's correlations average over about this many chunks (2 s): all of a start-up sound."""
DELAY_MIN_CHUNKS = 10
"""Echo chunks the finder must have seen before its best lag means anything."""
DELAY_STABLE_CHUNKS = 8
"""The best lag must stay put (within one period) this many chunks in a row to be taken as the delay."""
DELAY_MIN_CORRELATION = 0.5
"""...and correlate at least this well: the echo of a start-up sound measured 0.8-0.95; lags that hold none of it
stay well below 0.5."""
DELAY_LEADING_EDGE = 0.95
"""The delay is the earliest lag correlating within this fraction of the best one. The room's reverberation
smears the envelope later, so the best lag alone read the delay 30-60 ms late in rooms of RT60 0.3-0.6 s (18 of
92 echo-suite scenes), and a prediction that starts after the echo does mistakes the echo for the user; the
leading edge found every delay of the suite within 20 ms."""

ACTIVE_REFERENCE_DBFS = -60.0
"""A reference band frame quieter than this (per band, relative to full scale) predicts no echo."""
NOISE_WINDOW_CHUNKS = 48
"""The room's noise per band is the quietest chunk of the last 1.5 s (minimum statistics): speech, the user's and
the echo alike, leaves gaps in every band within that time, so this follows the noise even while the assistant
talks on for minutes."""
AUDIBLE_DB = 10.0
"""A band says something only where the mic stands this far above the room's noise."""
_FLOOR = 1e-3
"""Energies are in int16 units squared per bin; this keeps logs finite in digital silence."""


@dataclass(frozen=True)
class Verdict:
    """What one chunk of the raw mic holds, as far as the played reference can tell."""

    echo_possible: bool
    """The reference was active within the echo's delay window: the mic may hold echo."""
    calibrated: bool
    """The coupling has been measured; before that, nothing over playback is believed."""
    unexplained_bands: int
    """Bands the echo cannot account for."""

    @property
    def someone_else(self) -> bool:
        """Energy the playback does not explain: the user (or another sound in the room)."""
        return self.calibrated and self.unexplained_bands >= MIN_UNEXPLAINED_BANDS


def _band_energy_of_dbfs(level_dbfs: float, bands: int) -> float:
    """The energy one band holds when white-ish sound at `level_dbfs` RMS is spread over `bands` bands: by
    Parseval, a one-sided Hann-windowed spectrum of N samples at RMS r sums to about N^2 r^2 3/16."""
    rms = 32768.0 * 10 ** (level_dbfs / 20)
    return CHUNK_SAMPLES**2 * rms**2 * 3 / 16 / bands


class _Coupling:
    """Speaker-to-mic coupling per band, dB, for one way of predicting the echo, with its spread.

    The median of the mic-to-predicted-reference ratio over the last `COUPLING_WINDOW_CHUNKS` chunks with echo in
    the band, and the median absolute deviation around it. Medians, because the user talks over part of the
    playback: as long as the echo alone fills most of the window, the user's voice moves neither."""

    def __init__(self, bands: int) -> None:
        self.db: Floats = np.zeros(bands)
        self.spread_db: Floats = np.zeros(bands)
        self.upper_db: Floats = np.full(bands, np.inf)
        """How far above the coupling nine chunks in ten of the echo come, per band (refreshed with the median)."""
        self.seen: npt.NDArray[np.int64] = np.zeros(bands, np.int64)
        self._ratios: Floats = np.zeros((COUPLING_WINDOW_CHUNKS, bands))
        self._chunks = 0

    @property
    def calibrated(self) -> bool:
        return int(np.count_nonzero(self.seen >= CALIBRATION_CHUNKS)) >= MIN_CALIBRATED_BANDS

    def judged(self) -> npt.NDArray[np.bool_]:
        return self.seen >= CALIBRATION_CHUNKS

    def learn(self, ratio_db: Floats, counted: npt.NDArray[np.bool_]) -> None:
        """`counted`: the bands where this chunk has echo to learn from."""
        bands = np.flatnonzero(counted)
        self._ratios[self.seen[bands] % COUPLING_WINDOW_CHUNKS, bands] = ratio_db[bands]
        self.seen[bands] += 1
        self._chunks += 1
        # The medians move slowly once a band's window is full: refreshing them every few chunks is as good and
        # costs a fraction (a median per band per chunk was most of the model's time).
        for band in bands[self.seen[bands] <= CALIBRATION_CHUNKS]:  # calibrating: every chunk counts
            self._refresh(int(band), self._ratios[: self.seen[band], band])
        if self._chunks % MEDIAN_REFRESH_CHUNKS:
            return
        for band in np.flatnonzero((self.seen > CALIBRATION_CHUNKS) & (self.seen < COUPLING_WINDOW_CHUNKS)):
            self._refresh(int(band), self._ratios[: self.seen[band], band])
        full = np.flatnonzero(self.seen >= COUPLING_WINDOW_CHUNKS)
        if full.size:
            self.db[full] = np.median(self._ratios[:, full], axis=0)
            self.spread_db[full] = np.median(np.abs(self._ratios[:, full] - self.db[full]), axis=0)
            self.upper_db[full] = np.quantile(self._ratios[:, full], UPPER_QUANTILE, axis=0) - self.db[full]

    def _refresh(self, band: int, window: Floats) -> None:
        self.db[band] = float(np.median(window))
        self.spread_db[band] = float(np.median(np.abs(window - self.db[band])))
        self.upper_db[band] = float(np.quantile(window, UPPER_QUANTILE)) - self.db[band]


class _DelayFinder:
    """The echo's delay after the reference, read off the envelopes: per lag, the normalised cross-correlation,
    over time and bands, of the mic's log band energies with the reference's that many periods earlier
    (exponentially forgetting). Found once: it serves until the canceller measures the delay itself (sample-exact,
    but only after 1.5 s of playback, when the start-up sound is over)."""

    def __init__(self, lags: int, bands: int) -> None:
        self._chunks = 0
        self._mic_mean: Floats = np.zeros(bands)
        self._reference_mean: Floats = np.zeros((lags, bands))
        self._covariance: Floats = np.zeros(lags)
        self._mic_variance = 0.0
        self._reference_variance: Floats = np.zeros(lags)
        self._candidate: int | None = None
        self._stable_chunks = 0
        self.delay_periods: int | None = None

    def push(self, reference_newest_first: Floats, mic: Floats) -> None:
        """One chunk with echo possible: the reference band energies per lag (newest first) and the mic's."""
        lags = len(self._covariance)
        if self.delay_periods is not None or len(reference_newest_first) < lags:
            return
        self._chunks += 1
        rate = max(1.0 / self._chunks, 1.0 / DELAY_FORGET_CHUNKS)
        mic_db, reference_db = np.log10(mic + _FLOOR), np.log10(reference_newest_first[:lags] + _FLOOR)
        self._mic_mean += rate * (mic_db - self._mic_mean)
        self._reference_mean += rate * (reference_db - self._reference_mean)
        mic_dev, reference_dev = mic_db - self._mic_mean, reference_db - self._reference_mean
        self._covariance += rate * ((reference_dev * mic_dev).sum(axis=1) - self._covariance)
        self._mic_variance += rate * (float((mic_dev * mic_dev).sum()) - self._mic_variance)
        self._reference_variance += rate * ((reference_dev * reference_dev).sum(axis=1) - self._reference_variance)
        correlation = self._covariance / np.sqrt(self._mic_variance * self._reference_variance + 1e-12)
        best = float(np.max(correlation))
        if self._chunks < DELAY_MIN_CHUNKS or best < DELAY_MIN_CORRELATION:
            return
        lag = int(np.flatnonzero(correlation >= DELAY_LEADING_EDGE * best)[0])
        if self._candidate is not None and abs(lag - self._candidate) <= 1:
            self._stable_chunks += 1
        else:
            self._candidate, self._stable_chunks = lag, 1
        if self._stable_chunks >= DELAY_STABLE_CHUNKS:
            self.delay_periods = self._candidate


class _RoomDecay:
    """The room's reverberation, measured on the first sound whose echo can tell (the start-up sound, when nobody
    talks yet; in a room where its echo hardly rises above the noise, the first answer). While it plays and its
    echo rings out, each chunk is judged with every candidate decay as well; a candidate fails a chunk that the
    safest explains and it does not (the echo rang longer than it allows), and is tested by a chunk where the
    safest predicts `DECAY_TEST_DB` more echo than it does (there, a room as reverberant as the safest assumes
    would have made it fail). When the echo has ended, the room's decay is `DECAY_SAFETY_STEPS` candidates safer
    than the first that failed (at most `DECAY_STEEPEST_DB_PER_MS`) and itself tested `DECAY_MIN_TESTS` times
    (else the safest); a sound whose echo tested no candidate that often decides nothing (the next one tries). A
    user talking over the sound can only make the choice safer: a voice the safest cannot explain fails none."""

    def __init__(self) -> None:
        self.db_per_ms = DECAY_DB_PER_MS
        self.measured = False
        self._failures = np.zeros(len(DECAY_CANDIDATES_DB_PER_MS), np.int64)
        self._tests = np.zeros(len(DECAY_CANDIDATES_DB_PER_MS), np.int64)
        self._listening = False

    def weigh(self, unexplained_per_candidate: list[int], tested_per_candidate: list[bool]) -> None:
        """One chunk of the sound's echo, per candidate (safest first): its unexplained bands, and whether the
        chunk tests it."""
        self._listening = True
        if unexplained_per_candidate[0] < MIN_UNEXPLAINED_BANDS:
            self._failures += np.asarray(unexplained_per_candidate) >= MIN_UNEXPLAINED_BANDS
        self._tests += np.asarray(tested_per_candidate)

    def echo_ended(self) -> None:
        """The sound's echo has died away: decide, or wait for the next sound."""
        if not self._listening or self.measured:
            return
        self._listening = False
        tested = np.flatnonzero(self._tests >= DECAY_MIN_TESTS)
        if not tested.size:
            self._failures[:] = 0
            self._tests[:] = 0
            return
        failed = np.flatnonzero(self._failures > 0)
        first_failed = int(failed[0]) if failed.size else len(DECAY_CANDIDATES_DB_PER_MS)
        safe_enough = first_failed - DECAY_SAFETY_STEPS
        # The steepest candidate that is far enough from the first failure, not steeper than the steepest ever
        # used, and tested itself (a candidate that passed untested is no evidence: in an RT60 0.3 s room the
        # steepest passed 5 tests, 0.3 had 4 and then took the story's reverberation for the user).
        usable = [
            int(k)
            for k in tested
            if k <= safe_enough and DECAY_CANDIDATES_DB_PER_MS[int(k)] <= DECAY_STEEPEST_DB_PER_MS
        ]
        self.db_per_ms = DECAY_CANDIDATES_DB_PER_MS[usable[-1]] if usable else DECAY_DB_PER_MS
        self.measured = True


class ReferenceEchoModel:
    """`push_played(period)` every audio period, `judge(raw_chunk)` every voice-detector chunk.

    The two must stay aligned: the reference period pushed last is the one played while the chunk's last period
    was captured (the card's duplex callback guarantees that; the simulated card too). Two predictions run side
    by side, each with its own coupling: over all delays (usable from the first echo) and around the delay the
    canceller measured (sharper, once that is known).
    """

    def __init__(self, period_samples: int) -> None:
        self._period_samples = period_samples
        history_frames = math.ceil((LONGEST_DELAY_MS + TAIL_MS) * RATE_HZ / 1000 / period_samples) + 2
        self._window = np.hanning(CHUNK_SAMPLES)
        bins_hz = np.fft.rfftfreq(CHUNK_SAMPLES, 1 / RATE_HZ)
        self._band_of_bin = np.digitize(bins_hz, BAND_EDGES_HZ) - 1  # -1 and 16: outside the bands
        self._bands = len(BAND_EDGES_HZ) - 1
        self._reference = np.zeros(CHUNK_SAMPLES, np.float64)  # the last 32 ms played
        # Band energies per period, a ring: row `_written % rows` is the next to write.
        self._history: Floats = np.zeros((history_frames, self._bands))
        self._written = 0
        self._weights: dict[tuple[float | None, float | None, float, float], Floats] = {}
        self._decay = _RoomDecay()
        self._active_energy = _band_energy_of_dbfs(ACTIVE_REFERENCE_DBFS, self._bands)
        self._any_delay = _Coupling(self._bands)
        self._at_delay = _Coupling(self._bands)
        self._exact = _Coupling(self._bands)
        # The played samples themselves, as far back as the longest delay reaches (for the exact prediction).
        self._played: Floats = np.zeros(int((LONGEST_DELAY_MS + 100.0) * RATE_HZ / 1000) + CHUNK_SAMPLES)
        self._played_count = 0
        self._silent_samples = 0  # zeros pushed in a row: once both windows are all zeros, pushing more changes nothing
        self._no_energy: Floats = np.zeros(self._bands)
        self._exact_allowed = True
        self._recent_mic: deque[Floats] = deque(maxlen=NOISE_WINDOW_CHUNKS)
        self._delay_ms: float | None = None
        self._also_ms: float | None = None
        self._widest_ms = MAX_DELAY_MS
        self._later_ms = DELAY_SLACK_MS
        self._finder = _DelayFinder(math.floor(MAX_DELAY_MS * RATE_HZ / 1000 / period_samples) + 1, self._bands)
        self.last = Verdict(echo_possible=False, calibrated=False, unexplained_bands=0)

    @property
    def calibrated(self) -> bool:
        """The coupling is measured on enough echo to judge a chunk (with or without the delay)."""
        return self._any_delay.calibrated or self._at_delay.calibrated

    @property
    def coupling_db(self) -> Floats:
        """Speaker-to-mic coupling per band as measured (around the known delay when there is one), dB."""
        return (self._at_delay if self._delay_ms is not None else self._any_delay).db.copy()

    @property
    def exact_judges(self) -> bool:
        """Whether the next chunk would be judged against the played audio at exactly the delay."""
        settled = self._delay_ms is not None and self._later_ms <= DELAY_SLACK_MS and self._also_ms is None
        return settled and self._exact_allowed and self._exact.calibrated and self._exact_fits()

    @property
    def played_samples(self) -> int:
        """Reference samples pushed so far."""
        return self._played_count

    @property
    def found_delay_ms(self) -> float | None:
        """The echo's delay as this model found it on the envelopes (the start-up sound), or None until then."""
        periods = self._finder.delay_periods
        return None if periods is None else periods * 1000 * self._period_samples / RATE_HZ

    def set_delay_ms(
        self,
        delay_ms: float | None,
        also_ms: float | None = None,
        widest_ms: float = MAX_DELAY_MS,
        later_ms: float = DELAY_SLACK_MS,
        exact: bool = True,
    ) -> None:
        """The echo's delay after the reference as measured (None: unknown, look at every delay up to `widest_ms`);
        `also_ms`, another delay the echo may have at the same time (it may return to it at any moment); the echo
        may come up to `later_ms` after `delay_ms` (an unsettled path creeps later); `exact`: the path has been
        stable long enough for the exact prediction (`EXACT_MAX_UPPER_DB`) to be tried."""
        self._exact_allowed = exact
        self._delay_ms = delay_ms
        self._also_ms = also_ms if delay_ms is not None else None
        self._widest_ms = min(max(widest_ms, MAX_DELAY_MS), LONGEST_DELAY_MS)
        self._later_ms = later_ms

    def push_played(self, played: Audio) -> None:
        """One period of what the speaker played (zeros when silent)."""
        size = len(played)
        silent = not played.any()
        self._silent_samples = self._silent_samples + size if silent else 0
        self._played_count += size
        if not silent or self._silent_samples <= len(self._reference) + len(self._played):
            self._reference[:-size] = self._reference[size:]
            self._reference[-size:] = played
            at = (self._played_count - size + np.arange(size)) % len(self._played)
            self._played[at] = played
            energies = self._band_energies(self._reference)
        else:  # both windows hold only silence already: nothing to shift in, no energy (idle listening)
            energies = self._no_energy
        self._history[self._written % len(self._history)] = energies
        self._written += 1

    def judge(self, raw_chunk: Audio, path_trusted: bool = True, played_since: int = 0) -> Verdict:
        """Whether `raw_chunk` (the last `CHUNK_SAMPLES` of the raw mic) holds more than the echo. `path_trusted`:
        the echo's path is where the model was told (no xrun or move lately); while it is not, the couplings learn
        only until they are calibrated. `played_since`: reference samples pushed after the chunk's last sample
        (a chunk may end inside the period pushed last)."""
        mic = self._band_energies(raw_chunk.astype(np.float64))
        self._recent_mic.append(mic)
        noise = np.asarray(np.min(self._recent_mic, axis=0), dtype=np.float64) + _FLOOR
        wide = self._predicted_reference(None)
        if not np.any(wide > self._active_energy):
            self._decay.echo_ended()
            self.last = Verdict(False, self.calibrated, 0)
            return self.last
        self._finder.push(self._history[self._newest_first()], mic)
        audible = mic > 10 ** (AUDIBLE_DB / 10) * noise
        predictions = [(self._any_delay, wide)]
        if self._delay_ms is not None:
            predictions.append((self._at_delay, self._predicted_reference(self._delay_ms, self._also_ms)))
            if self._exact_allowed and self._later_ms <= DELAY_SLACK_MS and self._also_ms is None:  # one delay
                predictions.append((self._exact, self._exact_reference(self._delay_ms, played_since)))
        # Judge with the sharpest calibrated prediction: around the known delay when it has learnt enough, at
        # exactly the delay where that explains the echo closely (`EXACT_MAX_UPPER_DB`).
        coupling, reference = next(
            ((c, r) for c, r in reversed(predictions) if c.calibrated and (c is not self._exact or self._exact_fits())),
            predictions[0],
        )
        verdict = Verdict(True, coupling.calibrated, self._unexplained(mic, noise, audible, coupling, reference))
        if not self._decay.measured and self._delay_ms is not None and self._at_delay.calibrated:
            self._weigh_decays(mic, noise, audible)
        for each, prediction in predictions:
            if not path_trusted and each.calibrated:
                # After an xrun the echo is not where the model predicts it (or played audio never reached the
                # room): ratios then say nothing about the coupling. Measured on a loaded real stream, learning
                # from them spread the coupling by 5-11 dB, so every band's margin grew to 15-33 dB and a user
                # 3 dB under the echo, the path settled again, stood out in no band.
                continue
            counted = audible & (prediction > self._active_energy)  # bands with echo to learn from
            ratio_db = 10 * np.log10((mic + _FLOOR) / (prediction + _FLOOR))
            each.learn(ratio_db, counted)
        self.last = verdict
        return verdict

    @property
    def decay_db_per_ms(self) -> float:
        """How fast the echo is predicted to die away: measured on the first sound's echo, until then the safest."""
        return self._decay.db_per_ms

    @property
    def measured_decay(self) -> bool:
        """Whether `decay_db_per_ms` was measured on an echo (else it is the safest)."""
        return self._decay.measured

    def _exact_fits(self) -> bool:
        """Whether the exact prediction may judge: it has learnt on `EXACT_MIN_CHUNKS` of echo (a start-up sound
        alone is tonal and steady, and fits it even in a reverberant room) and explains that closely."""
        full = self._exact.seen >= EXACT_MIN_CHUNKS
        return (
            int(np.count_nonzero(full)) >= MIN_CALIBRATED_BANDS
            and float(np.median(self._exact.upper_db[full])) <= EXACT_MAX_UPPER_DB
        )

    def _exact_reference(self, delay_ms: float, played_since: int) -> Floats:
        """The band energies of the 32 ms played `delay_ms` before the chunk, the largest over `EXACT_LAGS_MS`
        around it (zeros before the start)."""
        energies = np.zeros(self._bands)
        for lag_ms in EXACT_LAGS_MS:
            end = self._played_count - played_since - round((delay_ms + lag_ms) * RATE_HZ / 1000)
            start = end - CHUNK_SAMPLES
            if start >= max(0, self._played_count - len(self._played)):
                window = self._played[np.arange(start, end) % len(self._played)]
                energies = np.maximum(energies, self._band_energies(window))
        return energies

    def _predicted_echo(self, noise: Floats, coupling: _Coupling, reference: Floats) -> Floats:
        """What the mic would hold with no one else in the room: the echo, its distortion and the noise."""
        echo = reference * 10 ** (coupling.db / 10)
        # A small speaker distorts what it plays (harmonics, intermodulation): some of the echo lands in bands
        # the reference leaves quiet, in proportion to the loudest echo.
        return np.asarray(echo + 10 ** (DISTORTION_DB / 10) * float(np.max(echo)) + noise, dtype=np.float64)

    def _unexplained(
        self, mic: Floats, noise: Floats, audible: npt.NDArray[np.bool_], coupling: _Coupling, reference: Floats
    ) -> int:
        """Bands the echo cannot account for. A band says something once its coupling is known and the mic stands
        clear of the room's noise there; a band the reference leaves silent predicts no echo, so a voice there is
        unexplained outright."""
        excess_db = 10 * np.log10((mic + _FLOOR) / self._predicted_echo(noise, coupling, reference))
        margin_db = np.maximum(MARGIN_DB, SPREAD_FACTOR * coupling.spread_db)
        return int(np.count_nonzero(audible & coupling.judged() & (excess_db > margin_db)))

    def _weigh_decays(self, mic: Floats, noise: Floats, audible: npt.NDArray[np.bool_]) -> None:
        """Judge the chunk with every candidate decay, around the known delay (over every delay, the candidates
        differ only half a second after the sound: no test of the room)."""
        coupling = self._at_delay
        references = [
            self._predicted_reference(self._delay_ms, self._also_ms, decay) for decay in DECAY_CANDIDATES_DB_PER_MS
        ]
        predicted = [self._predicted_echo(noise, coupling, reference) for reference in references]
        # Where the safest predicts a tail well above the noise and well above what the candidate predicts.
        telling = coupling.judged() & (predicted[0] > 10 ** (AUDIBLE_DB / 10) * noise)
        self._decay.weigh(
            [self._unexplained(mic, noise, audible, coupling, reference) for reference in references],
            [
                int(np.count_nonzero(telling & (predicted[0] > 10 ** (DECAY_TEST_DB / 10) * each)))
                >= MIN_UNEXPLAINED_BANDS
                for each in predicted
            ],
        )

    def _predicted_reference(
        self, delay_ms: float | None, also_ms: float | None = None, decay_db_per_ms: float | None = None
    ) -> Floats:
        """The reference band energy that can still be heard in this chunk: the largest over the delays the
        echo may have, with what played longer ago discounted by the room's decay (the reverberation of a loud
        syllable rings on over the quiet one after it), the room's as measured unless `decay_db_per_ms` says."""
        newest_first = self._newest_first()
        if not newest_first.size:
            return np.zeros(self._bands)
        decay = self._decay.db_per_ms if decay_db_per_ms is None else decay_db_per_ms
        weights = self._lag_weights(delay_ms, also_ms, decay)[: newest_first.size]
        return np.asarray(np.max(self._history[newest_first] * weights[:, np.newaxis], axis=0), dtype=np.float64)

    def _newest_first(self) -> npt.NDArray[np.int64]:
        """The history's rows from the newest: row k was played k periods ago."""
        rows = len(self._history)
        return np.asarray((self._written - 1 - np.arange(min(self._written, rows))) % rows, dtype=np.int64)

    def _lag_weights(self, delay_ms: float | None, also_ms: float | None, decay_db_per_ms: float) -> Floats:
        """Per lag (in periods, newest first): 0 before the echo can arrive, 1 around the delay (or either delay),
        then the decay."""
        key = (delay_ms, also_ms, self._widest_ms if delay_ms is None else -self._later_ms, decay_db_per_ms)
        weights = self._weights.get(key)
        if weights is None:
            weights = self._weights_around(delay_ms, self._later_ms, decay_db_per_ms)
            if also_ms is not None:
                weights = np.maximum(weights, self._weights_around(also_ms, DELAY_SLACK_MS, decay_db_per_ms))
            if len(self._weights) > 64:  # the delay estimate wanders a little: keep the cache bounded
                self._weights.clear()
            self._weights[key] = weights
        return np.asarray(weights, dtype=np.float64)

    def _weights_around(self, delay_ms: float | None, later_ms: float, decay_db_per_ms: float) -> Floats:
        frame_ms = 1000 * self._period_samples / RATE_HZ
        lag_ms = np.arange(len(self._history)) * frame_ms
        if delay_ms is None:
            earliest_ms, direct_ms = 0.0, self._widest_ms
        else:
            earliest_ms, direct_ms = max(0.0, delay_ms - DELAY_SLACK_MS), delay_ms + later_ms
        decay_db = np.maximum(0.0, lag_ms - direct_ms) * decay_db_per_ms
        return np.asarray(np.where(lag_ms >= earliest_ms - frame_ms, 10 ** (-decay_db / 10), 0.0), dtype=np.float64)

    def _band_energies(self, samples: Floats) -> Floats:
        spectrum = np.fft.rfft(samples * self._window)
        power = spectrum.real**2 + spectrum.imag**2
        inside = self._band_of_bin >= 0
        inside &= self._band_of_bin < self._bands
        sums = np.bincount(self._band_of_bin[inside], weights=power[inside], minlength=self._bands)
        return np.asarray(sums, dtype=np.float64)
