"""Stand-ins for trying Spine and for its tests; not used by the daemon (`spine run` never imports them).

* `fake_llm`: a fake OpenAI-compatible server (`spine fake-llm`), with faults on demand.
"""
