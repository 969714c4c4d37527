"""Audio plumbing between the real-time PortAudio callback and the FSM thread."""
