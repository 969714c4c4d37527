"""Settings of the monitor (`[monitor]`): the browser page over WebRTC, remote control and `/metrics`.

Part of the settings' one home (device/config.py); a leaf like it. The monitor itself is device/monitor/.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from device.tomlfile import checked_by, within


def bind_address_problem(value: object) -> str | None:
    """Why `value` is not an IP address the server can bind to, or None."""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return f'`bind_address` must be an IP address such as "127.0.0.1" or "0.0.0.0"; got "{value}"'
    return None


@dataclass(frozen=True)
class MonitorConfig:
    """The monitoring page (state diagram, timeline, levels, transcript, audio) and Prometheus metrics.

    Off the LAN by default: the server listens on the loopback address until `bind_address` says otherwise.
    Every request needs the token that `spine monitor-url` prints (created on first start, mode 0600 in
    `state_dir`); no STUN server is used, so it works on a network with no internet.
    """

    enabled: bool = False
    """Start the monitor with `spine run` (`spine demo --monitor` starts it for a demo)."""
    bind_address: str = field(default="127.0.0.1", metadata=checked_by(bind_address_problem))
    """The address the monitor listens on: 127.0.0.1 keeps it on this machine; 0.0.0.0 opens it to the LAN."""
    port: int = field(default=8765, metadata=within(0, 65535))
    """The TCP port of the page, the WebRTC offer and `/metrics` (0: any free port, printed at start)."""
    state_dir: str = "~/.local/state/spine"
    """Where the tokens live (`monitor-token`, `monitor-admin-token`, mode 0600), created on first start."""
    allow_control: bool = False
    """Let a browser holding the admin token type an utterance, mute or unmute, or request a barge-in; each
    enters the machine as an event (logged, replayable). Off: every control message is refused."""
    metrics_access: Literal["loopback", "token"] = "loopback"
    """Who may scrape `/metrics`: `loopback`, any client on this machine without a token (others need one);
    `token`, only a client that sends the token."""
    max_sessions: int = field(default=4, metadata=within(1, 64))
    """Browsers connected at once; one more gets 503 until a session closes."""
    max_offer_bytes: int = field(default=65536, metadata=within(1024, 1048576))
    """The largest WebRTC offer accepted, in bytes; a larger one gets 413."""
    max_messages_per_s: float = field(default=10.0, metadata=within(0.1, 1000.0))
    """Data-channel messages a browser may send per second (a burst of as many is allowed); more are refused."""
    feed_records: int = field(default=4096, metadata=within(64, 1048576))
    """Records (steps, levels) waiting for the monitor's thread at most; when it falls behind, the oldest are
    dropped and counted (the FSM thread never waits for the monitor)."""
    session_buffer_bytes: int = field(default=1048576, metadata=within(16384, 67108864))
    """Bytes a browser's data channel may hold unsent; beyond it records for that browser are dropped and
    counted (a slow browser never holds the others back)."""
    levels_interval_ms: float = field(default=50.0, metadata=within(10.0, 1000.0))
    """How often the level meters (mic, cleaned mic, speaker, VAD, wake score, ERLE) are sent, in milliseconds."""
