"""The spine: the one place that decides. `step(spine, event, now) -> (spine, commands)`.

Theory of operation
-------------------
Organs (hearing, workers, playback, timers) only post events. One thread takes each event from the inbox,
writes it to the log, and calls `step()`. `step()` never waits, never reads a clock and never does I/O: the
time is an argument and everything it wants done leaves as commands.

`step()` names the event's trigger - its type, or for a fired timer the timer's kind (`Timer("confirm")`),
since each kind of timer means something different - and looks (type of state, trigger) up in two tables:

* `TRANSITIONS` - the pair is handled: a handler computes the next state and the commands. Each row also
  declares the states it may lead to; the diagram (`spine fsm`) and the reachability check are built from
  those, and the property tests check every step against them.
* `IGNORED` - the pair means nothing in that state; `step()` keeps the state and emits `NoteIgnored(reason)`
  so the log says why.

Together the two tables cover every (state, trigger) pair: `spine fsm --check` and the table tests hold that.
There is no table of illegal pairs. Every event can arrive late from another thread (a result after its turn
was cancelled, a timer whose disarm crossed its fire, a report of an epoch long cut), so no pair is impossible,
and a `step()` that raised on one would crash the loop for a race. `IllegalEvent` is raised only for a pair
the tables forgot, which the checks rule out.

The handlers live beside this file, one module per phase: `turn` (start-up, wake word, listening, the
utterance, the transcript and whether to answer it), `reply` (streaming, synthesis, playback reports),
`interrupt` (barge-in, pause and resume, the breaker's end), `alarms` (timers that ring), `faults` (a failed
job, a lost sound card), `mute_and_stop`, and `leftovers` (late results and timers, dropped as data). They build
their outcomes from `moves` (open a turn, cancel it, go back to idle) and keep account of the assistant's own
voice with `voice`. `table` says what a row is and lets mypy check each handler against its row.

Rules the handlers keep (the invariants they serve are numbered in docs/architecture.md):

1. Work belongs to a turn. A result whose turn is not the current one is dropped as data (`NoteIgnored` with
   the turn numbers) - never acted on (invariant 2).
2. Cancelling a turn always does the same three things (`moves.abandon`): `CutPlayback` for its epoch if it
   speaks, `CancelTurn`, and disarming its timers. The heard text of a cut reply is committed when the epoch
   reports `PlaybackStopped` with the exact played-sample count (invariant 5).
3. Only audio of the current epoch is queued; a cut epoch is never reopened (invariant 4).
4. Time is an argument. Deadlines leave as `StartTimer(kind, ref, due_sample=now + ...)` and come back as
   `TimerFired(kind, ref)`; `ref` is the turn (listen, utterance, confirm, lookahead, asr, tts), the alarm
   (alarm, ring), the reopen attempt or the breaker trip, so a fire that crossed its disarm is recognised and
   dropped. Speech to text has a deadline (`asr`): with no transcript by then the turn fails with its apology,
   so a hung engine never leaves the assistant silent in `Transcribing`; so does synthesis (`tts`: a sentence
   asked for and none delivered since), so it never leaves it silent in `Thinking`, `Speaking` or `Announcing`.
5. Interruption follows one matrix (`CoreConfig.barge_in`): a signal a state's row does not allow never
   interrupts it. While audio plays, the first hint of voice pauses it (`Paused`); confirmed speech cancels
   the turn, and a hint that is not confirmed in time (the `confirm` timer) resumes playback exactly where it
   paused. A wake word found in the assistant's own speech is never an interruption.
6. Transcription may start early, at the user's pause (`SpeechPaused`). A transcript names the sample it runs
   to, and only the transcript up to the endpoint is ever answered: one of a pause the user spoke on past is
   dropped as data.
7. A chime (`PlayEarcon`: wake, timeout, mute, unmute, startup) is an epoch of its own, outside every turn:
   never a reply's epoch, never in memory, never cut (only a stop cuts the start-up sound, which plays on
   `Started` so the echo canceller converges before the first answer).
8. The assistant never answers itself. The context knows what its voice last said and when it last sounded
   (`OwnVoice`: the words played, from the chunks and the played-sample counts; the epochs still sounding).
   A transcript whose utterance began while that voice sounded, or within `echo_tail_samples` after, and whose
   words are the last ones played (`own_words_match`) is not a user turn: no reply, a `NoteIgnored` that says
   "self-interruption", back to listening. Stop phrases are checked first: they are never answered either.
9. Hearing itself trips a breaker: `breaker_self_heard` times within `breaker_window_samples` suspend voice
   barge-in (`VoiceBargeIn(enabled=False)`; only the wake word interrupts, no follow-up window opens) until
   the echo canceller next reports convergence, or `breaker_hold_samples` pass (the `breaker` timer).
10. A stop phrase ends the exchange unanswered: the wake phrase is stripped from the transcript's start, and
   the rest must be stop phrases and fillers only ("Hey Jarvis, stop.", "Stop. Stop.", "Cancel that"). A
   talk-over of at most `short_interruption_max_words` words, or whose speech lasted at most
   `short_interruption_max_samples` (unless it followed the wake word), that is no stop phrase is taken as one;
   so is one of at most `STOP_TAIL_MAX_WORDS` words that ends in a stop phrase, or whose last clause is one
   ("..., stop."). A wake word heard faintly within `FAINT_WAKE_WINDOW_SAMPLES` of an utterance's onset
   (`WakeHeardFaintly`) is stripped from its audio instead: transcription starts after it, and the utterance
   counts as addressed.
11. A timer that is done rings (`Context.ring`): its line, a gap (`Ringing`), its line again (the `ring`
   timer), for at most `alarm_ring_max_samples`. The wake word, a stop phrase or any request silences it;
   speech that turns out to be nothing (an empty transcript, the assistant's own echo) does not, and the ring
   goes on. Every way back to idle passes through `moves.to_idle`, which resumes a ring, then announces an
   alarm that came due while busy.
"""

from __future__ import annotations

from device.core import alarms, faults, interrupt, leftovers, mute_and_stop, reply, turn
from device.core import commands as cmd
from device.core import events as ev
from device.core.interrupt import in_paused
from device.core.states import (
    STATE_TYPES,
    Announcing,
    Degraded,
    Hearing,
    Idle,
    Listening,
    Muted,
    Paused,
    Ringing,
    Speaking,
    Spine,
    State,
    Stopping,
    Thinking,
    Transcribing,
)
from device.core.table import Commands, Events, Key, States, Timer, every_state_but, row, table, trigger_of


class IllegalEvent(Exception):
    """An event arrived in a state that neither table classifies (a gap `spine fsm --check` reports)."""


# ------------------------------------------------------------------------------------------ named groups

ALL_STATES: States[State] = STATE_TYPES
RUNNING: States[Idle | Listening | Hearing | Transcribing | Thinking | Speaking | Paused | Announcing | Ringing] = (
    Idle, Listening, Hearing, Transcribing, Thinking, Speaking, Paused, Announcing, Ringing
)  # fmt: skip
"""The assistant works normally: not muted, the sound card is there, not stopping."""
LIVE: States[State] = (*RUNNING, Muted, Degraded)
"""Everything but `Stopping`: a lost sound card or a stop still changes something."""
RESTING: States[Idle | Ringing] = (Idle, Ringing)
"""No turn runs: waiting for the wake word, or in the gap between two sayings of a ringing timer."""
LISTENING: States[Listening | Hearing] = (Listening, Hearing)
"""A turn listens for its request: before the user speaks, and while they do."""
REPLYING: States[Thinking | Speaking] = (Thinking, Speaking)
"""A reply streams in: before its first audio, and while it plays."""
PLAYING: States[Speaking | Announcing] = (Speaking, Announcing)
"""The assistant's voice plays the current turn's epoch (a hint of the user's voice pauses it)."""
INTERRUPTIBLE: States[Transcribing | Thinking | Speaking | Paused | Announcing] = (
    Transcribing, Thinking, Speaking, Paused, Announcing
)  # fmt: skip
"""A turn's work runs after the request was heard: the barge-in matrix says what may interrupt it."""
NO_WORK: States[Idle | Listening | Ringing | Muted | Degraded | Stopping] = (
    Idle, Listening, Ringing, Muted, Degraded, Stopping
)  # fmt: skip
"""No job of any turn runs: every result that arrives is a leftover."""
NOT_PLAYING: States[State] = (*NO_WORK, Hearing, Transcribing, Thinking)
"""No epoch of the current turn plays: a drain report is a leftover, a chime's, or the start-up sound's."""
REPLYING_OR_PAUSED: States[Thinking | Speaking | Paused] = (Thinking, Speaking, Paused)
SYNTHESISING: States[Thinking | Speaking | Announcing | Paused] = (Thinking, Speaking, Announcing, Paused)
"""Where a sentence may be out for synthesis, under its deadline (`Timer("tts")`)."""

TURN_RESULTS: Events[ev.TurnResult] = (
    ev.TranscriptReady, ev.ReplyDelta, ev.ReplyFinished, ev.AlarmRequested, ev.TtsChunkReady, ev.RemoteAudioReady,
    ev.EngineFailed
)  # fmt: skip
"""Everything a turn's work posts back (each names its turn)."""
REPLY_RESULTS: Events[
    ev.ReplyDelta | ev.ReplyFinished | ev.AlarmRequested | ev.TtsChunkReady | ev.RemoteAudioReady
] = (ev.ReplyDelta, ev.ReplyFinished, ev.AlarmRequested, ev.TtsChunkReady, ev.RemoteAudioReady)  # fmt: skip
"""What the reply backend and speech synthesis post back."""
REQUEST_RESULTS: Events[
    ev.TranscriptReady | ev.ReplyDelta | ev.ReplyFinished | ev.AlarmRequested | ev.RemoteAudioReady
] = (ev.TranscriptReady, ev.ReplyDelta, ev.ReplyFinished, ev.AlarmRequested, ev.RemoteAudioReady)  # fmt: skip
"""Results only a user's request produces (an announcement's turn only synthesises its line, with Piper)."""

TO_IDLE = (Idle, Announcing, Ringing)
"""Where `moves.to_idle` leads: rest, or resume a ring, or announce an alarm that rang while busy."""
AFTER_REPLY = (Listening, *TO_IDLE)
"""Where a reply heard to its end leads (`reply.follow_up`): a follow-up window, or wherever idle is."""

# ----------------------------------------------------------------------------------------------- the table
# Read a row as: in STATE(S), on TRIGGER, HANDLER decides, leading to TARGETS. A row without targets keeps
# its state; `may_stay` marks a row whose handler may keep the state (a stale event: wrong turn or epoch).

TRANSITIONS = table(
    # --- the way in: start-up sound, wake word, then speech, then its end
    row(Idle, ev.Started, turn.on_started),
    row(RESTING, ev.WakeDetected, turn.on_wake, Listening, may_stay=True),
    row(Ringing, ev.SpeechStarted, alarms.on_ring_speech, Hearing, may_stay=True),
    row(LISTENING, ev.WakeDetected, turn.on_wake_again, Listening, may_stay=True),
    row(Listening, ev.SpeechStarted, turn.on_speech_started, Hearing),
    row(Listening, Timer("listen"), turn.on_listen_timeout, *TO_IDLE, may_stay=True),
    row(Hearing, ev.WakeHeardFaintly, turn.on_faint_wake),
    row(Hearing, ev.SpeechPaused, turn.on_speech_paused),
    row(Hearing, ev.TranscriptReady, turn.on_early_transcript),
    row(Hearing, ev.EngineFailed, turn.on_early_failure),
    row(Hearing, ev.SpeechEnded, turn.on_speech_ended, Transcribing, Thinking, Listening, *TO_IDLE),
    row(Hearing, Timer("utterance"), turn.on_utterance_limit, Transcribing, may_stay=True),
    row(Transcribing, ev.TranscriptReady, turn.on_transcript, Thinking, Listening, *TO_IDLE, may_stay=True),
    row(Transcribing, Timer("asr"), faults.on_asr_overdue, *TO_IDLE, may_stay=True),
    # --- typed text (the monitor's admin): answered as a transcript; a listening window or an utterance gives way
    row(Idle, ev.TextTyped, turn.on_typed, Thinking, Idle),
    row(LISTENING, ev.TextTyped, turn.on_typed, Thinking, *TO_IDLE),
    row(Ringing, ev.TextTyped, turn.on_typed, Thinking, *TO_IDLE),
    # --- the reply: text streams in, sentences are synthesised a little ahead of the speaker, and played
    row(REPLYING, ev.ReplyDelta, reply.on_reply_delta),
    row(Thinking, ev.ReplyFinished, reply.on_reply_finished, *TO_IDLE, may_stay=True),
    row(Speaking, ev.ReplyFinished, reply.on_reply_finished),
    row(REPLYING, ev.AlarmRequested, alarms.on_alarm_requested),
    row(Thinking, ev.TtsChunkReady, reply.on_tts_chunk, Speaking, may_stay=True),
    row(Speaking, ev.TtsChunkReady, reply.on_tts_chunk),
    row(Speaking, Timer("lookahead"), reply.on_lookahead_due),
    row(Announcing, ev.TtsChunkReady, reply.on_announcement_chunk),
    row(SYNTHESISING, Timer("tts"), faults.on_tts_overdue, *TO_IDLE, may_stay=True),
    # --- a backend with its own voice (realtime): each stretch of its speech is text and audio at once
    row(Thinking, ev.RemoteAudioReady, reply.on_remote_audio, Speaking, may_stay=True),
    row(Speaking, ev.RemoteAudioReady, reply.on_remote_audio),
    row(INTERRUPTIBLE, ev.EngineFailed, faults.on_failed, *TO_IDLE, may_stay=True),
    # --- playback reports: drained to its end, or stopped after a cut with the played-sample count (which also
    #     asks for the reply of a request typed over that answer, held until its heard text is in memory)
    row(Speaking, ev.PlaybackDrained, reply.on_drained, *AFTER_REPLY, may_stay=True),
    row(Announcing, ev.PlaybackDrained, reply.on_drained, *TO_IDLE, may_stay=True),
    row(NOT_PLAYING, ev.PlaybackDrained, reply.on_stale_drain),
    row(ALL_STATES, ev.PlaybackStopped, reply.on_stopped),
    # --- interruption, as the barge-in matrix allows: wake word; voice hint pauses, confirmed speech cancels
    row(INTERRUPTIBLE, ev.WakeDetected, interrupt.on_barge_in_wake, Listening, may_stay=True),
    row(PLAYING, ev.VoiceHint, interrupt.on_voice_hint, Paused, may_stay=True),
    row(INTERRUPTIBLE, ev.SpeechStarted, interrupt.on_barge_in_speech, Hearing, may_stay=True),
    row(Paused, Timer("confirm"), interrupt.on_confirm_lapsed, Speaking, Announcing, may_stay=True),
    row(INTERRUPTIBLE, ev.BargeInRequested, interrupt.on_barge_in_request, Listening),
    row(INTERRUPTIBLE, ev.TextTyped, interrupt.on_barge_in_text, Thinking, *TO_IDLE, may_stay=True),
    # --- while paused, the reply's work goes on as while speaking (an announcement's as while announcing)
    row(Paused, ev.ReplyDelta, in_paused(reply.on_reply_delta, leftovers.on_result_without_work)),
    row(Paused, ev.ReplyFinished, in_paused(reply.on_reply_finished, leftovers.on_result_without_work)),
    row(Paused, ev.AlarmRequested, in_paused(alarms.on_alarm_requested, leftovers.on_result_without_work)),
    row(Paused, ev.TtsChunkReady, in_paused(reply.on_tts_chunk, reply.on_announcement_chunk)),
    row(Paused, ev.RemoteAudioReady, in_paused(reply.on_remote_audio, leftovers.on_result_without_work)),
    row(Paused, ev.PlaybackDrained, in_paused(reply.on_drained, reply.on_drained), *AFTER_REPLY, may_stay=True),
    row(Paused, Timer("lookahead"), interrupt.on_lookahead_paused),
    # --- the assistant heard itself: the breaker holds voice barge-in until the canceller converges, or a while
    row(ALL_STATES, ev.EchoCancellerChanged, interrupt.on_echo_canceller),
    row(ALL_STATES, Timer("breaker"), interrupt.on_breaker_hold_over),
    # --- user timers: armed by a reply; due, announced in Idle (later elsewhere); then they ring until stopped
    row(Idle, Timer("alarm"), alarms.on_alarm_due_at_rest, Announcing, may_stay=True),
    row(every_state_but(Idle), Timer("alarm"), alarms.on_alarm_due_while_busy),
    row(Ringing, Timer("ring"), alarms.on_ring_due, *TO_IDLE, may_stay=True),
    row(every_state_but(Ringing), Timer("ring"), alarms.on_ring_timer_elsewhere),
    # --- the sound card: lost, reopened with back-off, restored
    row(LIVE, ev.AudioDeviceLost, faults.on_device_lost, Degraded),
    row(Degraded, Timer("reopen"), faults.on_reopen_due),
    row(Degraded, ev.AudioDeviceRestored, faults.on_device_restored, *TO_IDLE, Muted),
    # --- privacy: mute ends everything and turns the mic off; unmute rests (or announces a rung alarm)
    row(RUNNING, ev.MuteChanged, mute_and_stop.on_mute, Muted, may_stay=True),
    row(Degraded, ev.MuteChanged, mute_and_stop.on_mute),
    row(Muted, ev.MuteChanged, mute_and_stop.on_unmute, *TO_IDLE, may_stay=True),
    row(LIVE, ev.StopRequested, mute_and_stop.on_stop, Stopping),
    # --- leftovers: results and timers of work this state does not run, dropped as data; acknowledgements
    row(NO_WORK, TURN_RESULTS, leftovers.on_result_without_work),
    row(Hearing, REPLY_RESULTS, leftovers.on_result_without_work),
    row(Transcribing, REPLY_RESULTS, leftovers.on_result_without_work),
    row(REPLYING_OR_PAUSED, ev.TranscriptReady, leftovers.on_result_without_work),
    row(Announcing, REQUEST_RESULTS, leftovers.on_result_without_work),
    row(every_state_but(Listening), Timer("listen"), leftovers.on_timer_not_armed_here),
    row(every_state_but(Hearing), Timer("utterance"), leftovers.on_timer_not_armed_here),
    row(every_state_but(Paused), Timer("confirm"), leftovers.on_timer_not_armed_here),
    row(every_state_but(Speaking, Paused), Timer("lookahead"), leftovers.on_timer_not_armed_here),
    row(every_state_but(Degraded), Timer("reopen"), leftovers.on_timer_not_armed_here),
    row(every_state_but(Transcribing), Timer("asr"), leftovers.on_timer_not_armed_here),
    row(every_state_but(*SYNTHESISING), Timer("tts"), leftovers.on_timer_not_armed_here),
    row(ALL_STATES, ev.JobCancelled, leftovers.on_job_cancelled),
)

_NOT_ADDRESSED = "speech without the wake word is not addressed to the assistant"
_ONLY_START = "end of speech in {}: only its start is an interruption signal"
_NOTHING_PLAYS = "a hint of voice only pauses playback, and nothing plays in {}"

IGNORED: dict[Key, str] = {
    (Idle, ev.SpeechStarted): _NOT_ADDRESSED,
    (Idle, ev.SpeechEnded): _NOT_ADDRESSED,
    (Listening, ev.SpeechEnded): "end of speech that began before listening opened (the wake word itself)",
    (Hearing, ev.SpeechStarted): "already hearing an utterance",
    **{(s, ev.SpeechEnded): _ONLY_START.format(s.__name__) for s in (Transcribing, Thinking, Speaking, Announcing)},
    (Paused, ev.SpeechEnded): "speech ended before it was confirmed: the confirm timer resumes playback",
    **{(s, ev.VoiceHint): _NOTHING_PLAYS.format(s.__name__) for s in (Idle, Transcribing, Thinking, Degraded)},
    (Listening, ev.VoiceHint): "while listening, confirmed speech (SpeechStarted) starts the utterance",
    (Hearing, ev.VoiceHint): "already hearing an utterance",
    **{(s, ev.SpeechPaused): "a pause only matters within an utterance being heard" for s in every_state_but(Hearing)},
    (Paused, ev.VoiceHint): "already paused: waiting for the hint to be confirmed",
    (Ringing, ev.VoiceHint): "nothing plays between two sayings of a ringing timer: confirmed speech is heard",
    (Ringing, ev.SpeechEnded): "end of speech that began before the ring's gap: only a start is heard",
    **{(s, ev.Started): "the loop starts once, in Idle, before any other event" for s in every_state_but(Idle)},
    **{
        (s, ev.VoiceGateChanged): "a fact for the log and the timeline: how hearing tells the user from the echo"
        for s in ALL_STATES
    },
    **{
        (s, ev.EchoDelayChanged): "a fact for the log and the timeline: where hearing expects the echo (hearing acts "
        "on it itself)"
        for s in ALL_STATES
    },
    **{
        (s, e): "a fact for the log, the timeline and the metrics: the sound card could not keep up, or keeps up "
        "again at a lower latency (hearing acts on it itself)"
        for s in ALL_STATES
        for e in (ev.AudioXrun, ev.AudioLatencyRaised, ev.AudioLatencyLowered)
    },
    **{
        (s, ev.WakeHeardFaintly): "a faint wake word only moves where an utterance being heard starts (rule 10)"
        for s in every_state_but(Hearing)
    },
    **{
        (s, ev.JobLeaked): "a cancelled job did not stop in time: its worker was replaced, its results are "
        "never posted (a fact for the log and the leak count)"
        for s in ALL_STATES
    },
    **{
        (Muted, e): "muted: the microphone is not listened to"
        for e in (ev.WakeDetected, ev.VoiceHint, ev.SpeechStarted, ev.SpeechEnded)
    },
    (Stopping, ev.MuteChanged): "stopping: the microphone is closing anyway",
    (Stopping, ev.WakeDetected): "stopping: nothing new starts",
    (Stopping, ev.SpeechStarted): "stopping: nothing new starts",
    (Stopping, ev.VoiceHint): "stopping: nothing new starts",
    (Stopping, ev.SpeechEnded): "stopping: nothing new starts",
    (Stopping, ev.StopRequested): "already stopping: nothing more to cancel",
    (Degraded, ev.WakeDetected): "no sound card: the wake word cannot have been heard through it",
    (Degraded, ev.SpeechStarted): "no sound card: speech cannot have been heard through it",
    (Degraded, ev.SpeechEnded): "no sound card: speech cannot have been heard through it",
    (Stopping, ev.AudioDeviceLost): "stopping: the sound card is no longer needed",
    (Stopping, ev.AudioDeviceRestored): "stopping: the sound card is no longer needed",
    **{(s, ev.AudioDeviceRestored): "the sound card was not lost in this state" for s in (*RUNNING, Muted)},
    **{
        (s, ev.BargeInRequested): f"a barge-in was requested, but nothing of a turn's answer runs in {s.__name__}"
        for s in (Idle, Listening, Hearing, Ringing, Muted, Degraded, Stopping)
    },
    **{
        (s, ev.RemoteLinkChanged): "a fact for the log, the monitor and the metrics: the turn it hurts hears of it "
        "from its reply job"
        for s in ALL_STATES
    },
    (Muted, ev.TextTyped): "muted: nothing is answered until the user unmutes",
    (Degraded, ev.TextTyped): "no sound card: an answer could not be heard",
    (Stopping, ev.TextTyped): "stopping: nothing new starts",
}


def step(spine: Spine, event: ev.Event, now: int) -> tuple[Spine, Commands]:
    """Decide: the next value of the machine and the commands to carry out, for `event` at sample `now`."""
    key = (type(spine.state), trigger_of(event))
    transition = TRANSITIONS.get(key)
    if transition is not None:
        state, ctx, out = transition.handler(spine.state, spine.context, event, now)
        return Spine(state, ctx), out
    reason = IGNORED.get(key)
    if reason is not None:
        return spine, (cmd.NoteIgnored(reason),)
    raise IllegalEvent(f"{type(event).__name__} cannot happen in {type(spine.state).__name__}")
