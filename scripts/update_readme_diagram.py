"""Regenerate the state diagram in README.md from the transition table (`make diagram`)."""

import re
from pathlib import Path

from device.core.chart import mermaid

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text(encoding="utf-8")
block = f"<!-- fsm:begin -->\n```mermaid\n{mermaid()}```\n<!-- fsm:end -->"
new = re.sub(r"<!-- fsm:begin -->.*?<!-- fsm:end -->", lambda _: block, text, flags=re.S)
readme.write_text(new, encoding="utf-8")
print("README.md diagram updated" if new != text else "README.md diagram already current")
