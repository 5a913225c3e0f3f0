"""End-to-end: a series selector's regular expression costs time linear in the label value.

Prometheus matches label values with RE2 semantics, in linear time; a backtracking engine takes
time exponential in the value for patterns such as ``(a+)+b``, so that anyone allowed to query
could pin the cores with a few requests. Fifty remote-written series whose ``job`` is a run of 36
``a`` are federated with that pattern (a backtracking engine took over half a second a series)
and with ones that match them.
"""

from __future__ import annotations

import time

import pytest

from remote_write import snappy_block, write_request
from conftest import start_sextant

SERIES = 50
JOB = "a" * 36


@pytest.fixture(scope="module")
def regex_sextant(e2e_dir, sextant_bin):
    instance = start_sextant("regex", e2e_dir, sextant_bin)
    now_ms = int(time.time() * 1000)
    series = [({"__name__": "probe_metric", "job": JOB, "instance": f"host-{i}"}, [(float(i), now_ms)])
              for i in range(SERIES)]
    response = instance.remote_write(snappy_block(write_request(series)))
    assert response.status == 204, response.describe()
    yield instance
    instance.stop()


@pytest.mark.parametrize("pattern, expected", [("(a+)+b", 0), ("(a+)+", SERIES), ("(a|aa)+", SERIES), ("a{36}", SERIES)])
def test_nested_quantifiers_answer_at_once(regex_sextant, pattern, expected):
    started = time.monotonic()
    samples = regex_sextant.federate(f'{{__name__="probe_metric",job=~"{pattern}"}}')
    elapsed = time.monotonic() - started
    assert len(samples) == expected, [s.labels for s in samples[:3]]
    # Backtracking took about 35 s here; linear matching, milliseconds.
    assert elapsed < 5, f"/federate with job=~{pattern!r} took {elapsed:.1f} s"


def test_patterns_re2_refuses_are_refused_by_name(regex_sextant):
    # Backreferences and look-arounds are not RE2 (nor Prometheus): a 400 that names the pattern.
    for pattern in (r"(a)\\1", "a(?=b)"):
        response = regex_sextant.get("/federate", [("match[]", f'{{job=~"{pattern}"}}')])
        assert response.status == 400, response.describe()
        assert "invalid regular expression" in response.text, response.text
