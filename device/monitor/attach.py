"""Starting the monitor beside a daemon: the feed as a loop observer, the server on its thread.

The caller also wraps its audio side (`MonitoredAudioSide(audio, daemon, monitor.feed)`) so the meters and
tracks get each heard period.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from device.config import samples
from device.monitor.feed import MonitorFeed
from device.monitor.metrics import AudioHealth
from device.monitor.server import Monitor
from device.monitor.token import load_or_create_tokens, state_dir_path
from device.rates import SPINE_RATE_HZ
from device.runtime.daemon import Daemon
from device.settings.monitor import MonitorConfig


def attach_monitor(
    config: MonitorConfig, daemon: Daemon, log_path: Path, audio_health: Callable[[], AudioHealth] = AudioHealth
) -> Monitor:
    feed = MonitorFeed(config.feed_records, samples(config.levels_interval_ms / 1000), SPINE_RATE_HZ)
    daemon.loop.observers.append(feed.observe)
    tokens = load_or_create_tokens(state_dir_path(config.state_dir))
    monitor = Monitor(config, tokens, feed, daemon.inbox.post, log_path, audio_health)
    port = monitor.start()
    host = "<this machine's address>" if config.bind_address in ("0.0.0.0", "::") else config.bind_address
    print(f"spine: monitor on http://{host}:{port}/ (`spine monitor-url` prints the sign-in URL)", flush=True)
    return monitor
