"""The simulated room: a sample-clocked stand-in for the speaker, the air and the user (docs/architecture.md,
"Testing").

`scene` reads what happens in the room (a TOML file), `speech` voices the user with espeak-ng (a different
TTS from the assistant's Piper), `room` carries the speaker output back into the microphone (delay, room
impulse response, gain) and adds the room's noise.
"""
