"""Every `spine bench` measurement, one module (or a few) per bench; `device/bench/cli.py` wires the commands.

* `audio`: the real-time audio path on the configured devices (callback timing, xruns, cut to silence);
* `echo*`: the echo scene suite, barge-in with and without echo cancellation, in the simulated room;
* `latency*`: how long the user waits for an answer, per stage, in the simulated room on the wall clock;
* `realstream*`: `spine run` on a private PulseAudio room, talked over by espeak-ng;
* `tables`: what the reports share (percentiles, table cells, writing a report and its JSON).

The simulated room they drive (scene, room, card, speech, the measures of one run) is `device/sim/`.
"""
