"""The pure core: states, events, commands and the one `step()` that decides.

Nothing in this package touches threads, clocks, numpy or I/O. Time comes in as an argument (`now`, in samples
at the device rate) and leaves as data (timer deadlines inside commands).
"""
