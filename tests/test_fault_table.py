"""The fault table of docs/reliability.md (device/bench/faults.py) names only tests that exist, covers every kind
of fault issue 16 lists, and reads pytest's report the way pytest writes it."""

from __future__ import annotations

import re
from pathlib import Path

from device.bench import faults

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_table_names_exists() -> None:
    missing = []
    for fault in faults.FAULTS:
        for node in fault.tests:
            path, name = node.split("::")
            source = (ROOT / path).read_text(encoding="utf-8") if (ROOT / path).exists() else ""
            if not re.search(rf"^def {re.escape(name)}\(", source, flags=re.MULTILINE):
                missing.append(node)
    assert missing == []


def test_every_kind_of_fault_of_the_issue_has_rows_and_each_row_says_its_outcome() -> None:
    groups = {fault.group for fault in faults.FAULTS}
    assert groups == {faults.ENGINES, faults.REPLY, faults.REALTIME, faults.AUDIO, faults.DISK, faults.MODELS,
                      faults.STOP, faults.CONFIG, faults.MONITOR, faults.USER}  # fmt: skip
    assert all(fault.tests and fault.outcome and fault.injected for fault in faults.FAULTS)
    assert len({fault.fault for fault in faults.FAULTS}) == len(faults.FAULTS)


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1"
skipped="1" tests="4" time="3.1"><testcase classname="tests.test_a" name="test_one[x]" time="1.0" />
<testcase classname="tests.test_a" name="test_one[y]" time="0.5"><failure message="assert 1 == 2">...</failure>
</testcase><testcase classname="tests.test_b" name="test_two" time="0.2" /><testcase classname="tests.test_c"
name="test_three" time="0.1"><skipped type="pytest.skip" message="needs root">...</skipped></testcase>
</testsuite></testsuites>"""


def test_a_row_fails_when_any_of_its_tests_or_parameters_fails_and_says_which(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(JUNIT, encoding="utf-8")
    cases = list(faults._junit_cases(report))
    assert cases[:2] == [("tests/test_a.py::test_one", "passed", 1.0), ("tests/test_a.py::test_one", "failed", 0.5)]
    results = {
        "tests/test_a.py::test_one": faults.TestResult("tests/test_a.py::test_one", 1, 1, 0, 1.5),
        "tests/test_b.py::test_two": faults.TestResult("tests/test_b.py::test_two", 1, 0, 0, 0.2),
        "tests/test_c.py::test_three": faults.TestResult("tests/test_c.py::test_three", 0, 0, 1, 0.1),
        "tests/test_d.py::test_gone": faults.TestResult("tests/test_d.py::test_gone", 0, 0, 0, 0.0),
    }
    row = faults.Fault("g", "f", "i", "o", ("tests/test_a.py::test_one", "tests/test_b.py::test_two"), "unit")
    assert faults.row_verdict(row, results) == "**failed**: test_one"
    fine = faults.Fault("g", "f", "i", "o", ("tests/test_b.py::test_two", "tests/test_c.py::test_three"), "unit")
    assert faults.row_verdict(fine, results) == "passed (1), 1 skipped"
    gone = faults.Fault("g", "f", "i", "o", ("tests/test_d.py::test_gone",), "unit")
    assert faults.row_verdict(gone, results) == "**failed**: test_gone"  # a test that did not run proves nothing
