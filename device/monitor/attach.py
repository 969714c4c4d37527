"""Starting the monitor beside a daemon: the feed as a loop observer, the tap on the audio side, the server on
its thread. With `[monitor] enabled = false` nothing of it is imported (aiortc is slow to import).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from device.monitor.feed import AudioHealth
from device.runtime.daemon import Daemon
from device.runtime.fsm_thread import AudioSide
from device.settings.monitor import MonitorConfig

if TYPE_CHECKING:
    from device.monitor.server import Monitor


def with_monitor(
    config: MonitorConfig,
    daemon: Daemon,
    audio: AudioSide,
    log_path: Path,
    audio_health: Callable[[], AudioHealth] = AudioHealth,
) -> tuple[AudioSide, Monitor | None]:
    """The audio side for the FSM thread and the running monitor; unchanged and None when it is off."""
    if not config.enabled:
        return audio, None
    from device.monitor.tap import MonitoredAudioSide

    monitor = attach_monitor(config, daemon, log_path, audio_health)
    return MonitoredAudioSide(audio, daemon, monitor.feed), monitor


def attach_monitor(
    config: MonitorConfig, daemon: Daemon, log_path: Path, audio_health: Callable[[], AudioHealth] = AudioHealth
) -> Monitor:
    from device.config import samples
    from device.monitor.feed import MonitorFeed
    from device.monitor.server import Monitor
    from device.monitor.token import load_or_create_tokens, state_dir_path
    from device.rates import SPINE_RATE_HZ

    feed = MonitorFeed(config.feed_records, samples(config.levels_interval_ms / 1000), SPINE_RATE_HZ)
    daemon.loop.observers.append(feed.observe)
    tokens = load_or_create_tokens(state_dir_path(config.state_dir))
    monitor = Monitor(config, tokens, feed, daemon.inbox.post, log_path, audio_health)
    port = monitor.start()
    host = "<this machine's address>" if config.bind_address in ("0.0.0.0", "::") else config.bind_address
    print(f"spine: monitor on http://{host}:{port}/ (`spine monitor-url` prints the sign-in URL)", flush=True)
    return monitor
