"""Spine's own sample rate, defined once (a leaf: it imports nothing, so every layer may import it)."""

from __future__ import annotations

SPINE_RATE_HZ = 16000
"""The assistant's own rate: every sample index, period, frame, model input, event time and log time in Spine is
16 kHz mono int16. The sound card may run at another rate (`[audio] card_rate_hz`): device/audio/rate.py
resamples between the two on Spine's side of the callback."""
