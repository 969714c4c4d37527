"""Issue 16's fault table: each fault, where it is injected, the outcome Spine defines for it, and the tests that
inject it and check that outcome.

`spine bench reliability` runs the tests of every row (pytest, in one process, with a JUnit report) and writes
each row's result beside its outcome in docs/reliability.md; `tests/test_fault_table.py` keeps every named test
existing, so a renamed or deleted test cannot leave a row that proves nothing. How a test runs, in the last
column: `core` the pure state machine with explicit sample times; `unit` one part in-process (real threads where
it says so); `loopback` real client code against a real server on 127.0.0.1 (the fake OpenAI-compatible server,
the realtime peer over WebRTC, the monitor); `fuzz` hypothesis on a parser; `room` the whole daemon in the
simulated room with the real models; `spine run` a real process on a PulseAudio null sink with the real models;
`container` a booted Debian with systemd.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.errors import UserError


@dataclass(frozen=True)
class Fault:
    group: str
    fault: str
    injected: str
    outcome: str
    tests: tuple[str, ...]
    how: str


def _t(*names: str) -> tuple[str, ...]:
    """Node ids from "file::test" shorthands ("test_x.py::test_y" -> "tests/test_x.py::test_y")."""
    return tuple(f"tests/{name}" for name in names)


ENGINES, REPLY, REALTIME, AUDIO, DISK, MODELS, STOP, CONFIG, MONITOR, USER = (
    "engines", "reply server", "realtime peer", "sound card", "disk", "model files", "stop signals",
    "configuration", "monitor", "timers and mute",
)  # fmt: skip

FAULTS: tuple[Fault, ...] = (
    Fault(
        ENGINES,
        "a job (speech to text, reply, synthesis) raises",
        "the job runners, virtual and threaded",
        "`EngineFailed(turn, kind, reason)` after what the job already gave; the worker takes the next job at once",
        _t(
            "test_job_runners.py::test_virtual_an_exception_in_a_job_becomes_engine_failed",
            "test_job_runners.py::test_threaded_exception_in_a_job_becomes_engine_failed",
            "test_reply_backend.py::test_a_responder_that_fails_to_open_fails_the_job_not_the_caller",
        ),
        "unit",
    ),
    Fault(
        ENGINES,
        "the reply fails mid-answer",
        "the core (`EngineFailed(reply)`)",
        'what was heard is kept as interrupted, the turn cancelled, "Sorry, I could not get an answer just now.", '
        "then rest; the apology is not memory",
        _t("test_core_turns.py::test_engine_failure_ends_the_turn_with_a_short_apology_then_idle"),
        "core",
    ),
    Fault(
        ENGINES,
        "speech to text hangs",
        "the core's `asr` deadline (`[asr] timeout_s`)",
        'at the deadline the turn ends with "Sorry, I did not catch that."; the stuck job is reported leaked; '
        "the next request is answered",
        _t(
            "test_core_turns.py::test_speech_to_text_that_hangs_ends_the_turn_with_its_apology_at_the_deadline",
            "test_core_golden_cases.py::test_speech_to_text_that_hangs_gets_the_apology_at_its_deadline_and_the_next_request_is_answered",
        ),
        "core, golden log",
    ),
    Fault(
        ENGINES,
        "speech synthesis hangs (before the first audio, mid-answer, while paused, in an apology)",
        "the core's `tts` deadline (`[tts] timeout_s`, from the last sentence delivered)",
        'the answer is cut, what was heard kept, "Sorry, something went wrong with my voice."; an apology whose '
        "synthesis hangs just ends; the next request is answered",
        _t(
            "test_core_golden_cases.py::test_speech_synthesis_that_hangs_cuts_the_answer_keeps_what_was_heard_and_an_apology_that_hangs_just_ends",
            "test_core_turns.py::test_synthesis_that_hangs_while_paused_ends_the_answer_with_the_apology",
            "test_core_turns.py::test_the_synthesis_deadline_is_off_once_the_turn_ends_and_a_late_fire_is_dropped",
        ),
        "core, golden log",
    ),
    Fault(
        ENGINES,
        "synthesis fails (an answer, its apology, a timer's line)",
        "the core (`EngineFailed(tts)`)",
        "an answer gets the apology; a failed apology goes quietly to rest; a failed ring line ends the ring",
        _t(
            "test_core_turns.py::test_a_failed_apology_goes_quietly_to_idle",
            "test_core_stop_and_ring.py::test_mute_silences_a_ring_and_a_failed_voice_ends_it",
        ),
        "core",
    ),
    Fault(
        ENGINES,
        "speech to text gives nothing or garbage (empty, a letter loop, tags like [BLANK_AUDIO])",
        "the core; the transcript's filter",
        "an empty transcript rests without asking for a reply",
        _t(
            "test_core_turns.py::test_empty_transcript_goes_back_to_idle_without_asking",
            "test_asr_commands.py::test_a_letter_stuck_in_a_loop_is_no_speech_and_a_short_stutter_stays",
        ),
        "core, unit",
    ),
    Fault(
        ENGINES,
        "the reply is empty, or control bytes, lone surrogates, a megabyte",
        "the core; the streaming client",
        "no word: the apology instead of silence; control bytes dropped; a megabyte cut at the reply's bound",
        _t(
            "test_empty_reply_apology.py::test_a_reply_finished_without_a_word_says_the_apology_then_rests",
            "test_server_text_escaped.py::test_control_characters_in_the_reply_text_are_dropped",
            "test_reply_bounds.py::test_a_1_mb_sentence_streamed_as_words_ends_at_the_reply_bound_on_a_word_boundary",
        ),
        "core, loopback",
    ),
    Fault(
        ENGINES,
        "the voice or wake model gives NaN (a model in a garbage state)",
        "NaN put into the real Silero state and openWakeWord window",
        "read as silence once, the model reset and counted (`spine_model_non_finite_outputs`); the next words and "
        "the wake word are heard",
        _t(
            "test_engines.py::test_a_vad_state_gone_nan_is_read_as_silence_once_and_the_stream_starts_again",
            "test_engines.py::test_a_wake_window_gone_nan_is_forgotten_and_the_wake_word_is_heard_after_it",
        ),
        "unit, real models",
    ),
    Fault(
        ENGINES,
        "a cancelled job stuck in native code",
        "the threaded runner; a real Piper sentence cancelled mid-run",
        "reported leaked once at its deadline (0.5 s), its worker replaced so the next turn runs, its late output "
        "never posted; a synthesis is stopped mid-sentence (ONNX Runtime's terminate flag) and acknowledged, no leak",
        _t(
            "test_cancel_proof.py::test_a_stuck_job_is_reported_as_leaked_once_the_deadline_has_passed_and_not_before",
            "test_cancel_proof.py::test_the_leaked_worker_is_replaced_so_the_next_turn_runs_while_the_stuck_thread_still_blocks",
            "test_cancel_proof.py::test_the_stuck_jobs_late_output_is_never_posted_even_after_it_is_released",
            "test_tts_cancel.py::test_a_cancelled_synthesis_job_is_acknowledged_in_time_and_never_leaks",
        ),
        "unit, real threads",
    ),
    Fault(
        ENGINES,
        "the FSM loop freezes (a hearing model hangs) or the process stops",
        "`SPINE_FAULT=freeze-fsm-after-s`; SIGSTOP under systemd",
        "the watchdog pings stop within one interval and say why once; systemd restarts the service",
        _t(
            "test_service_notify.py::test_a_frozen_fsm_loop_stops_the_watchdog_within_one_interval",
            "test_service_container.py::test_a_frozen_daemon_is_restarted_by_the_watchdog",
        ),
        "spine run, container",
    ),
    Fault(
        ENGINES,
        "a round of the loop raises (a bug, a hearing model's exception)",
        "the FSM thread; `SPINE_FAULT=hearing-raises-after-s` in `spine run`",
        "the stop is still stepped into the log with the failure as its reason, the sound card closed, the daemon "
        "finished; the traceback and a line saying so on stderr; the process exits 1 and systemd restarts it",
        _t(
            "test_fsm_thread.py::test_a_failing_round_still_steps_the_stop_and_finishes",
            "test_run_faults.py::test_hearing_that_raises_ends_the_run_with_exit_1_the_failure_as_the_stops_reason_and_the_log_whole",
        ),
        "unit, spine run",
    ),
    Fault(
        ENGINES,
        "inference stalls the loop for 0.6 s",
        "the simulated room's `[[stall]]`",
        "the card plays on from its ring; the mic backlog is heard after it (a wake word said in the stall found)",
        _t(
            "test_hard_room.py::test_a_stall_freezes_the_loop_while_the_card_plays_on_and_the_backlog_is_handled_after_it"
        ),
        "room",
    ),
    Fault(
        REPLY,
        "no word after the request (silence, keep-alives, empty deltas)",
        "the fake server's `hang_before_first_token`, `keepalive`, `empty_deltas`",
        "the turn's `first_token_timeout_s` ends it (keep-alives cannot extend it): the apology",
        _t(
            "test_openai_client.py::test_silence_before_the_first_token_is_a_first_token_timeout",
            "test_reply_deadlines.py::test_keep_alives_before_the_first_word_end_at_the_first_token_deadline",
        ),
        "loopback",
    ),
    Fault(
        REPLY,
        "silence mid-answer; a trickle that never ends a sentence; a reply that runs on",
        "the fake server's `hang`, slow tokens",
        "`idle_timeout_s`, `first_sentence_timeout_s` or `reply_timeout_s` fails the job: the apology, the words "
        "before it kept",
        _t(
            "test_openai_client.py::test_silence_mid_reply_is_an_idle_timeout",
            "test_reply_deadlines.py::test_words_without_a_sentence_end_meet_the_first_sentence_deadline",
            "test_reply_deadlines.py::test_a_reply_that_runs_on_meets_the_whole_reply_deadline",
            "test_reply_deadlines.py::test_a_passed_deadline_is_an_engine_failure_of_the_reply_job",
        ),
        "loopback",
    ),
    Fault(
        REPLY,
        "HTTP 500 / 429 / 404, refused connection, TLS mismatch, a refused key",
        "the fake server's faults, a closed port, https to http",
        "one printable error naming the status and the fix (429: when to retry; 401: where the key comes from; "
        "the key never shown); as a job, the apology",
        _t(
            "test_openai_client.py::test_http_500_says_the_status_and_the_body",
            "test_openai_client.py::test_http_429_says_rate_limited_and_when_to_retry",
            "test_openai_client.py::test_a_closed_port_is_connection_refused_with_the_url",
            "test_openai_client.py::test_a_missing_key_and_a_wrong_key_say_where_the_key_comes_from",
            "test_openai_client.py::test_the_key_never_appears_in_repr_or_errors",
            "test_run_faults.py::test_a_stop_while_the_apology_for_a_server_error_is_said_ends_whole",
        ),
        "loopback, spine run",
    ),
    Fault(
        REPLY,
        "the server drops the connection mid-answer",
        "the fake server's `disconnect`",
        "the sentence playing is cut, the apology said, then rest",
        _t(
            "test_openai_client.py::test_a_connection_closed_mid_stream_is_a_reply_ended_mid_way",
            "test_run_faults.py::test_a_reply_server_that_drops_mid_answer_gets_the_apology_then_rests",
        ),
        "loopback, spine run",
    ),
    Fault(
        REPLY,
        "malformed stream: not JSON, wrong content type, an error mid-stream, cut anywhere, a megabyte",
        "the fake server's `malformed`, `wrong_content_type`, `error_mid_stream`; the SSE reader fuzzed",
        "a named error quoting the chunk (escaped); never another exception or a hang",
        _t(
            "test_openai_client.py::test_a_malformed_chunk_is_named",
            "test_openai_client.py::test_a_wrong_content_type_is_named",
            "test_fuzz_inputs.py::test_a_stream_reads_the_same_however_it_is_cut_or_is_refused_either_way",
            "test_fuzz_inputs.py::test_a_megabyte_of_stream_is_read_or_refused_in_time",
        ),
        "loopback, fuzz",
    ),
    Fault(
        REPLY,
        "a barge-in while the server hangs",
        "`hang` plus a cancel",
        "the stream is closed, `JobCancelled` within 0.5 s, no leak; the server sees the disconnect",
        _t(
            "test_reply_backend.py::test_a_cancel_while_the_server_hangs_closes_the_stream_and_acks_within_half_a_second"
        ),
        "loopback, real threads",
    ),
    Fault(
        REALTIME,
        "the peer drops the call mid-answer",
        "the realtime peer's `drop_mid_answer`",
        "one failure and the apology; the link comes back and a new call answers the next turn",
        _t(
            "test_realtime_daemon.py::test_a_peer_that_drops_mid_answer_gets_an_apology_then_a_new_call_answers_the_next_turn"
        ),
        "room, WebRTC on loopback",
    ),
    Fault(
        REALTIME,
        "the peer stalls mid-answer",
        "`stall_mid_answer`",
        "the turn ends within `stall_timeout_s`; what played stays heard; the apology; the next turn works",
        _t(
            "test_realtime_faults.py::test_a_stalled_channel_mid_answer_ends_the_turn_within_the_stall_timeout_and_the_next_turn_works"
        ),
        "room, WebRTC on loopback",
    ),
    Fault(
        REALTIME,
        "nobody answers the call, HTTP 500, ICE never connects, a refused key",
        "a free port; `http_500`, `ice_unanswered`, a wrong key",
        "the turn gets the apology (or the local fallback answers); said once, retried with back-off; the key "
        "never shown",
        _t(
            "test_realtime_faults.py::test_nobody_listening_at_start_the_daemon_apologises_then_the_peer_comes_and_answers",
            "test_realtime_faults.py::test_ice_that_never_connects_is_a_media_failure_and_the_link_comes_back",
            "test_realtime_faults.py::test_a_wrong_key_is_said_once_never_shown_and_the_turn_gets_the_apology",
        ),
        "room, WebRTC on loopback",
    ),
    Fault(
        REALTIME,
        "a bad SDP answer or malformed server events",
        "the call's parsers, fuzzed",
        "an SDP or a connect error without the key; a malformed event is a notice and the call goes on",
        _t(
            "test_fuzz_inputs.py::test_a_realtime_servers_answer_is_an_sdp_or_a_connect_error_without_the_key",
            "test_realtime_call_rules.py::test_a_malformed_event_is_a_notice_and_the_call_goes_on",
            "test_fuzz_inputs.py::test_a_server_event_parses_or_is_a_protocol_error",
        ),
        "unit, fuzz",
    ),
    Fault(
        AUDIO,
        "the sound server goes away and comes back",
        "pulseaudio stopped and restarted under `spine run`",
        "`AudioDeviceLost`, reopened with back-off, `AudioDeviceRestored`, back to rest; the log replays",
        _t("test_run_pulse.py::test_spine_run_survives_the_sound_server_going_away_and_coming_back"),
        "spine run",
    ),
    Fault(
        AUDIO,
        "the card is lost while speaking, again while reopening, or while muted",
        "the core",
        "playback cut, turn cancelled, `Degraded` with doubling reopens; back to rest, or to Muted",
        _t(
            "test_core_turns.py::test_a_lost_sound_card_degrades_retries_with_growing_back_off_and_recovers",
            "test_core_turns.py::test_a_muted_assistant_stays_muted_through_a_lost_sound_card",
            "test_run_faults.py::test_the_sound_server_vanishing_mid_answer_cuts_it_and_the_assistant_rests_when_it_returns",
        ),
        "core, spine run",
    ),
    Fault(
        AUDIO,
        "the audio callback stops delivering",
        "`SPINE_FAULT=stop-audio-callback-after-s`",
        "within about 1 s the card counts as lost (`Degraded`), the watchdog is told; SIGTERM still exits 0",
        _t(
            "test_service_notify.py::test_a_stalled_audio_callback_stops_the_watchdog_until_the_spine_knows_the_card_is_lost_and_sigterm_sends_stopping"
        ),
        "spine run",
    ),
    Fault(
        AUDIO,
        "xruns: underruns, lost capture",
        "the stream with injected flags and clock",
        "each an `AudioXrun` in the log before hearing's reaction; a latency step up after repeated underruns "
        "(`AudioLatencyRaised`); hearing forgets the echo delay until found again",
        _t(
            "test_stream_latency.py::test_xruns_and_a_latency_step_are_facts_for_the_log_with_the_next_reports",
            "test_stream_latency.py::test_underruns_step_up_and_the_top_step_stays",
            "test_hearing_path_change.py::test_an_xrun_reported_by_the_card_forgets_the_delay_until_it_is_found_again_on_audio_after_it",
        ),
        "unit",
    ),
    Fault(
        DISK,
        "the disk refuses the event log (full, I/O error), then takes it again",
        "a refusing file, /dev/full, a filled 2 MiB tmpfs under `spine run`",
        "the assistant goes on; said once with the fix; held in memory (64 MiB) and written in order, the file "
        "whole; beyond the bound the newest records are counted",
        _t(
            "test_eventlog_disk_full.py::test_a_disk_that_refuses_then_takes_the_log_again_ends_with_the_whole_log",
            "test_eventlog_disk_full.py::test_beyond_the_bound_the_newest_records_are_dropped_counted_and_said_at_the_close",
            "test_run_pulse.py::test_spine_run_goes_on_while_the_disk_of_its_log_is_full_and_the_log_ends_whole",
        ),
        "unit, spine run",
    ),
    Fault(
        DISK,
        "a log that grows for months",
        "`[log] part_mb`, `[log] keep_mb`",
        "the log goes on in parts read as one; the oldest Spine logs are removed past the bound (never the part "
        "being written); a part that cannot be created is said once and the log goes on",
        _t(
            "test_eventlog_parts.py::test_a_long_log_goes_on_in_parts_that_read_and_replay_as_one",
            "test_eventlog_parts.py::test_the_oldest_spine_logs_go_first_and_nothing_else_is_touched",
            "test_eventlog_parts.py::test_a_next_part_that_cannot_be_created_is_said_once_and_the_log_goes_on_whole",
        ),
        "unit",
    ),
    Fault(
        MODELS,
        "a damaged model of the right size",
        "one byte flipped in a copy of the real models",
        "start-up refused before any engine loads: one line naming the file and `spine models fetch --dest DIR`",
        _t(
            "test_model_integrity.py::test_start_up_refuses_a_damaged_model_of_the_right_size",
            "test_model_integrity.py::test_spine_demo_exits_2_with_one_line_naming_the_damaged_file",
        ),
        "real models",
    ),
    Fault(
        MODELS,
        "a truncated model (an interrupted copy): wake, whisper, Piper",
        "the file cut short",
        'start-up refused: "has N bytes, expected M" and the fix',
        _t("test_model_integrity.py::test_start_up_refuses_a_truncated_model_naming_its_size_and_the_fix"),
        "real models",
    ),
    Fault(
        STOP,
        "SIGINT or SIGTERM during start-up (imports, model loading, the stream opening, the start-up sound)",
        "a real `spine run` signalled at 0-4 s",
        "exit 0 within the stop's bound, the log's last event the stop, the log replays",
        _t(
            "test_run_signals.py::test_spine_run_stops_cleanly_whenever_sigint_or_sigterm_comes",
            "test_run_signals.py::test_a_stop_while_the_models_load_ends_the_start_up_between_two_models_and_is_logged",
        ),
        "spine run",
    ),
    Fault(
        STOP,
        "SIGTERM while listening, hearing, muted, thinking (reply stream hung), speaking, announcing",
        "a real `spine run` driven into each state",
        "exit 0 within 20 s, the stop taken in that state, a hung stream closed, the log replays whole",
        _t(
            "test_run_faults.py::test_a_stop_while_listening_hearing_or_muted_ends_the_run_whole",
            "test_run_faults.py::test_a_stop_while_the_reply_server_hangs_before_its_first_word_closes_the_stream_and_ends_whole",
            "test_run_faults.py::test_a_stop_while_speaking_an_answer_whose_stream_hangs_ends_whole",
        ),
        "spine run",
    ),
    Fault(
        STOP,
        "a stop in every state (also transcribing, paused, ringing, degraded)",
        "the core",
        "the turn ends whole: no timer of it armed, nothing new armed, late results start nothing",
        _t("test_core_stop_and_mute_everywhere.py::test_a_stop_in_every_state_ends_the_turn_whole"),
        "core",
    ),
    Fault(
        STOP,
        "a stop that hangs; a job stuck at the stop",
        "the stop guard; the runner's stop",
        "a hung stop exits 1 after its bound naming where it hung; a stuck job is logged `JobLeaked` after the stop",
        _t(
            "test_run_signals.py::test_the_stop_guard_ends_a_stop_that_hangs_and_leaves_one_that_ends",
            "test_run_signals.py::test_a_job_stuck_at_the_stop_is_logged_as_job_leaked_after_the_stop",
        ),
        "unit",
    ),
    Fault(
        STOP,
        "`systemctl stop`",
        "a booted container",
        "Result=success, exit 0, the newest log ends with the stop",
        _t("test_service_container.py::test_stop_is_clean_and_the_event_log_complete"),
        "container",
    ),
    Fault(
        CONFIG,
        "a value out of range, an unknown key, a wrong type, a syntax error, any bytes",
        "the loader; `spine config --check`; fuzzed",
        "one line FILE:LINE naming the key and what to write, exit 2, before anything loads",
        _t(
            "test_config.py::test_a_setting_out_of_range_is_refused_at_its_line",
            "test_cli_errors.py::test_config_with_an_unknown_key_names_file_line_and_key",
            "test_cli_errors.py::test_config_with_a_toml_syntax_error_names_the_line",
            "test_fuzz_inputs.py::test_a_config_file_of_any_bytes_loads_or_is_refused",
            "test_eventlog_parts.py::test_log_bounds_out_of_range_are_refused_with_the_key",
        ),
        "unit, fuzz",
    ),
    Fault(
        MONITOR,
        "bad data-channel messages, control without the right, bad offers",
        "the monitor's sessions and `/offer`, fuzzed",
        "exactly one reply the page can parse saying why; nothing posted; a bad offer 400/413 and no peer left",
        _t(
            "test_monitor_webrtc.py::test_an_admin_control_enters_as_an_event_and_bad_messages_get_an_error",
            "test_fuzz_inputs.py::test_a_data_channel_message_gets_one_reply_the_page_can_parse",
            "test_monitor_server.py::test_offers_that_cannot_be_used_get_a_clear_4xx",
        ),
        "loopback, fuzz",
    ),
    Fault(
        MONITOR,
        "too many sessions, a message flood, bad tokens",
        "the monitor",
        '503 naming `max_sessions`; "too many messages" and the session stays usable; 401 (never 500)',
        _t(
            "test_monitor_webrtc.py::test_the_session_limit_holds_and_a_closed_peer_frees_its_slot",
            "test_monitor_webrtc.py::test_a_message_flood_is_refused_beyond_the_rate",
            "test_monitor_server.py::test_every_route_but_login_needs_the_token",
            "test_fuzz_inputs.py::test_a_presented_token_grants_access_only_when_it_is_a_token",
        ),
        "loopback, fuzz",
    ),
    Fault(
        USER,
        "a timer due while busy or muted; ringing with no one there",
        "the core",
        "it waits and is announced once at rest; a ring repeats with gaps and stops at its bound",
        _t(
            "test_core_turns.py::test_an_alarm_rings_when_idle_and_waits_while_busy",
            "test_core_stop_and_ring.py::test_a_finished_timer_rings_with_gaps_until_its_bound",
        ),
        "core",
    ),
    Fault(
        USER,
        "mute in every state",
        "the core; SIGUSR1 to a real `spine run`",
        "the turn ends, the mic is off, late results start nothing; unmute rests; without a card it rests muted "
        "once the card is back",
        _t("test_core_stop_and_mute_everywhere.py::test_a_mute_in_every_state_ends_the_turn_and_turns_the_mic_off"),
        "core",
    ),
)


# ----------------------------------------------------------------------------------------------------------
# Running the table's tests.


@dataclass(frozen=True)
class TestResult:
    node: str
    passed: int
    failed: int
    skipped: int
    seconds: float


def _junit_cases(xml_path: Path) -> Iterator[tuple[str, str, float]]:
    """(node id without parameters, outcome, seconds) of each test case in a JUnit report."""
    for case in ElementTree.parse(xml_path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/") + ".py"
        name = re.sub(r"\[.*\]$", "", case.get("name", ""))
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        yield f"{module}::{name}", outcome, float(case.get("time", "0"))


def run_fault_tests(faults: tuple[Fault, ...], progress: Callable[[str], None]) -> dict[str, TestResult]:
    """Runs every test the table names in one pytest process; the result of each, by node id."""
    nodes = sorted({node for fault in faults for node in fault.tests})
    if importlib.util.find_spec("pytest") is None:
        raise UserError("the fault table runs its tests with pytest: install the test dependencies (make test does)")
    with tempfile.TemporaryDirectory(prefix="spine-faults-") as scratch:
        report = Path(scratch) / "junit.xml"
        progress(f"fault table: running its {len(nodes)} tests (pytest) ...")
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *nodes],
            check=False, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        progress(f"fault table: done in {time.perf_counter() - began:.0f} s")
        if not report.exists():
            raise UserError("pytest wrote no report for the fault table's tests: run them by hand to see why")
        totals: dict[str, list[float]] = {node: [0, 0, 0, 0.0] for node in nodes}
        for node, outcome, seconds in _junit_cases(report):
            if node in totals:
                index = {"passed": 0, "failed": 1, "skipped": 2}[outcome]
                totals[node][index] += 1
                totals[node][3] += seconds
    return {node: TestResult(node, int(p), int(f), int(s), round(t, 1)) for node, (p, f, s, t) in totals.items()}


def row_verdict(fault: Fault, results: dict[str, TestResult]) -> str:
    mine = [results[node] for node in fault.tests]
    failed = [r.node.split("::")[1] for r in mine if r.failed or not (r.passed or r.skipped)]
    passed, skipped = sum(r.passed for r in mine), sum(r.skipped for r in mine)
    if failed:
        return "**failed**: " + ", ".join(failed)
    return f"passed ({passed})" + (f", {skipped} skipped" if skipped else "")


def failed_rows(results: dict[str, TestResult] | None) -> int:
    """Rows whose tests did not all pass (0 when the tests were not run)."""
    return 0 if results is None else sum(1 for f in FAULTS if row_verdict(f, results).startswith("**failed**"))


def report_lines(results: dict[str, TestResult] | None) -> list[str]:
    lines = [
        "## Fault table",
        "",
        "Each fault, where it is injected, the outcome Spine defines for it, and the tests that inject it and check",
        "that outcome (`device/bench/faults.py`; test names shortened, the file first). How: `core` the state",
        "machine with explicit sample times, `unit` one part in-process, `loopback` real client and server on",
        "127.0.0.1, `fuzz` hypothesis, `room` the simulated room with the real models, `spine run` a real process on",
        "a PulseAudio null sink, `container` a booted Debian with systemd (skipped without root).",
        "",
        "| # | what | fault | injected | defined outcome | tests | how | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, fault in enumerate(FAULTS, start=1):
        tests = "<br>".join(node.removeprefix("tests/") for node in fault.tests)
        verdict = row_verdict(fault, results) if results is not None else "not run (`--no-faults`)"
        lines.append(f"| {number} | {fault.group} | {fault.fault} | {fault.injected} | {fault.outcome} | {tests} |"
                     f" {fault.how} | {verdict} |")  # fmt: skip
    return lines


def results_json(results: dict[str, TestResult] | None) -> list[dict[str, Any]]:
    return [
        {"group": f.group, "fault": f.fault, "injected": f.injected, "outcome": f.outcome, "how": f.how,
         "tests": list(f.tests), "result": row_verdict(f, results) if results is not None else None}
        for f in FAULTS
    ]  # fmt: skip
