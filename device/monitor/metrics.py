"""`/metrics`: the live counters in Prometheus' text format (prometheus_client), `spine_` names, base units.

A custom collector reads `LiveStats` at scrape time instead of updating prometheus_client's metrics from the
FSM thread: their updates take a lock the scrape also takes, and the FSM thread must never wait. CPU and
memory come from prometheus_client's process collector (`spine_process_cpu_seconds_total`,
`spine_process_resident_memory_bytes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from device.core.states import STATE_TYPES
from device.monitor.feed import AudioHealth, Histogram, MonitorFeed

__all__ = ["AudioHealth", "SpineCollector", "exposition", "make_registry"]


class SpineCollector(Collector):
    def __init__(self, feed: MonitorFeed, audio_health: Callable[[], AudioHealth], sessions: Callable[[], int]) -> None:
        self._feed = feed
        self._audio_health = audio_health
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        stats = self._feed.stats
        state = GaugeMetricFamily("spine_state", "1 for the state the machine is in, else 0", labels=["state"])
        for state_type in STATE_TYPES:
            state.add_metric([state_type.__name__], 1.0 if state_type.__name__ == stats.state else 0.0)
        yield state
        yield CounterMetricFamily("spine_steps", "Events stepped by the machine", value=stats.steps)
        transitions = CounterMetricFamily("spine_transitions", "State changes, by from and to", labels=["from", "to"])
        for (source, target), count in sorted(dict(stats.transitions).items()):
            transitions.add_metric([source, target], count)
        yield transitions
        barge_ins = CounterMetricFamily("spine_barge_ins", "Replies cut by the user, by signal", labels=["signal"])
        for signal in ("voice", "wake_word", "remote"):
            barge_ins.add_metric([signal], dict(stats.barge_ins).get(signal, 0))
        yield barge_ins
        yield CounterMetricFamily(
            "spine_false_barge_ins", "Pauses on a voice hint that resumed (the hint was not the user)",
            value=stats.false_barge_ins,
        )  # fmt: skip
        yield CounterMetricFamily(
            "spine_missed_barge_ins", "Confirmed speech over the assistant that did not interrupt it (matrix, breaker)",
            value=stats.missed_barge_ins,
        )  # fmt: skip
        yield CounterMetricFamily("spine_leaked_jobs", "Cancelled jobs never acknowledged", value=stats.leaked_jobs)
        yield CounterMetricFamily("spine_failed_jobs", "Jobs that failed (model, backend)", value=stats.failed_jobs)
        link = CounterMetricFamily(
            "spine_realtime_link_changes", "The realtime call's ups and downs, by cause", labels=["cause"]
        )
        for cause, count in sorted(stats.realtime_link.items()):
            link.add_metric([cause], count)
        yield link
        if stats.realtime_up is not None:
            up = float(stats.realtime_up)
            yield GaugeMetricFamily("spine_realtime_up", "1 while the realtime call is up", value=up)
        yield _histogram("spine_onset_to_silence_seconds", "Voice onset to the reply's silence", stats.onset_to_silence)
        yield _histogram("spine_turn_latency_seconds", "End of speech to the reply's first audio", stats.turn_latency)
        health = self._audio_health()
        yield CounterMetricFamily(
            "spine_model_non_finite_outputs",
            "NaN or infinite voice/wake model scores (read as silence, model reset)",
            value=health.model_non_finite_outputs,
        )
        yield CounterMetricFamily("spine_xruns", "Audio periods the card ran a whole period late", value=health.xruns)
        yield CounterMetricFamily(
            "spine_underrun_samples", "Samples played as silence: playback ran dry", value=health.underrun_samples
        )
        yield CounterMetricFamily("spine_fsm_rounds", "Rounds of the FSM loop", value=health.fsm_rounds)
        yield CounterMetricFamily(
            "spine_fsm_work_seconds", "Time the FSM loop's rounds spent working (not waiting)", value=health.fsm_work_s
        )
        yield GaugeMetricFamily("spine_fsm_work_max_seconds", "The longest round's work", value=health.fsm_work_max_s)
        yield CounterMetricFamily(
            "spine_fsm_rounds_over_budget", "Rounds whose work took longer than one audio period per period heard",
            value=health.fsm_rounds_over_budget,
        )  # fmt: skip
        yield CounterMetricFamily(
            "spine_audio_thread_cpu_seconds", "CPU time of the sound card's callback thread (and PortAudio's loop)",
            value=health.audio_thread_cpu_s,
        )  # fmt: skip
        yield CounterMetricFamily(
            "spine_audio_resyncs", "Stream restarts that ended PortAudio's busy loop after a late callback",
            value=health.audio_resyncs,
        )  # fmt: skip
        yield CounterMetricFamily(
            "spine_audio_latency_raises", "Stream reopens one latency step up (mic audio lost, or it ran dry)",
            value=stats.latency_raises,
        )  # fmt: skip
        yield CounterMetricFamily(
            "spine_audio_latency_lowerings", "Stream reopens one latency step back down after ten quiet minutes",
            value=stats.latency_lowerings,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "spine_audio_output_latency_seconds",
            "Output latency of the sound card's stream (rises when too busy, falls back after ten quiet minutes)",
            value=health.output_latency_s,
        )  # fmt: skip
        if stats.erle_db is not None:
            yield GaugeMetricFamily(
                "spine_erle_decibels", "Echo return loss enhancement (canceller)", value=stats.erle_db
            )
        delay = CounterMetricFamily(
            "spine_echo_delay_changes", "Changes of the echo's delay: found, moved untold, lost to an xrun",
            labels=["cause"],
        )  # fmt: skip
        for cause, count in sorted(stats.echo_delay_changes.items()):
            delay.add_metric([cause], count)
        yield delay
        if stats.echo_delay_s is not None:
            yield GaugeMetricFamily(
                "spine_echo_delay_seconds",
                "The echo's delay after the played sound, as measured",
                value=stats.echo_delay_s,
            )
        yield GaugeMetricFamily(
            "spine_voice_barge_in_armed", "1 while voice may interrupt the assistant (coupling known, breaker closed)",
            value=1.0 if stats.voice_gate != "none" and not stats.voice_barge_in_suspended else 0.0,
        )  # fmt: skip
        yield CounterMetricFamily(
            "spine_monitor_dropped_records", "Records the monitor's thread fell too far behind to take",
            value=self._feed.dropped_records,
        )  # fmt: skip
        yield GaugeMetricFamily("spine_monitor_sessions", "Browsers connected", value=self._sessions())
        yield CounterMetricFamily(
            "spine_monitor_fsm_thread_seconds", "Time the FSM thread spent handing records to the monitor",
            value=self._feed.fsm_thread_ns / 1e9,
        )  # fmt: skip
        yield CounterMetricFamily(
            # the scrape runs on the monitor's own thread, so this is that thread's CPU time (server, WebRTC)
            "spine_monitor_thread_cpu_seconds", "CPU time of the monitor's thread", value=time.thread_time(),
        )  # fmt: skip


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    counts = list(histogram.counts)  # one copy: the FSM thread may observe meanwhile
    cumulative, buckets = 0, []
    for bound, count in zip((*histogram.bounds_s, float("inf")), counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.total_s)


def make_registry(collector: SpineCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    ProcessCollector(namespace="spine", registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
