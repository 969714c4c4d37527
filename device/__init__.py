"""Spine: an on-device voice assistant whose one state machine owns state, cancellation and cleanup."""

__version__ = "0.1.0"
