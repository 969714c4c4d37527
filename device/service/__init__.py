"""`spine run` as a service: sd_notify (READY, STATUS, WATCHDOG, STOPPING), the watchdog's rule, logging to the
journal or stderr, the audio thread's real-time priority, and the test-only fault injection."""
