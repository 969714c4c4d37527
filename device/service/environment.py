"""What the environment asks of `spine run` as a service, read and checked once, before anything loads.

NOTIFY_SOCKET                   where sd_notify messages go (set by systemd for Type=notify)
WATCHDOG_USEC, WATCHDOG_PID     the watchdog interval, and which process it is for (WatchdogSec=)
JOURNAL_STREAM                  stderr is the journal: log there with fields (device/service/journal.py)
SPINE_FAULT                     test-only fault injection (device/service/faults.py)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from device.service.faults import NO_FAULTS, Faults, faults_from_environment
from device.service.watchdog import watchdog_interval_s


@dataclass(frozen=True)
class ServiceEnvironment:
    environ: Mapping[str, str] = field(default_factory=dict)
    watchdog_interval_s: float | None = None
    """How often the watchdog checks and pings (half of WATCHDOG_USEC); None: no watchdog."""
    faults: Faults = NO_FAULTS


def read_service_environment(environ: Mapping[str, str] | None = None, pid: int | None = None) -> ServiceEnvironment:
    """The service's environment (os.environ and this process by default); a bad value is a `UserError`."""
    environ = dict(os.environ if environ is None else environ)
    return ServiceEnvironment(
        environ=environ,
        watchdog_interval_s=watchdog_interval_s(environ, os.getpid() if pid is None else pid),
        faults=faults_from_environment(environ),
    )
