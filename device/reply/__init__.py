"""Reply backends: they stream the answer's text; the spine decides what is spoken."""
