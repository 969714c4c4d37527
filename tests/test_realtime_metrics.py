"""The realtime link's changes (`RemoteLinkChanged`) are counted by cause in `/metrics`, with the link's state."""

from __future__ import annotations

from device.core.events import RemoteLinkChanged
from device.monitor.feed import AudioHealth, MonitorFeed
from device.monitor.metrics import SpineCollector, exposition, make_registry


def test_link_changes_are_counted_by_cause_and_the_last_one_says_whether_the_call_is_up() -> None:
    feed = MonitorFeed(100, 1600, 16_000)
    registry = make_registry(SpineCollector(feed, lambda: AudioHealth(0, 0), lambda: 0))
    assert b"spine_realtime_up" not in exposition(registry)  # another backend: no such gauge
    for up, cause in ((True, "connected"), (False, "dropped"), (False, "unreachable"), (True, "connected")):
        feed.observe(0, RemoteLinkChanged(up, cause, "detail"), "Idle", ())
    text = exposition(registry).decode()
    assert 'spine_realtime_link_changes_total{cause="connected"} 2.0' in text
    assert 'spine_realtime_link_changes_total{cause="dropped"} 1.0' in text
    assert 'spine_realtime_link_changes_total{cause="unreachable"} 1.0' in text
    assert "spine_realtime_up 1.0" in text
    feed.observe(0, RemoteLinkChanged(False, "stalled", "no event for 8 s"), "Thinking", ())
    assert "spine_realtime_up 0.0" in exposition(registry).decode()
