"""The thin imperative shell around the core: inbox, log, timers, playback gate, hearing, job runners."""
