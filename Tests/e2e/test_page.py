"""End-to-end: the operator's page in headless Chromium, on a real mesh and a real sextant.

One mesh run (Bookinfo with the TCP hop, Zipkin spans and the gRPC access log
service) feeds a fresh sextant in two phases: a baseline, then a phase in
which details-v1 answers every request 100 ms late and with a 500 (its fault
switch, ``POST /_fault``): new errors and a slower p99 outscore any latency
hiccup elsewhere in ``/api/v1/diff``'s ranking. The page, driven through
WebDriver, must then show:

- one SVG node per node and one SVG edge per edge of ``/api/v1/graph`` (same
  window), each edge's label equal to the API's numbers in every label mode,
  the health the API's codes give (the failing edges ``failing``), TCP drawn
  as TCP, no two node boxes overlapping;
- a click on an edge opens its panel with the API's numbers, and its example
  trace opens a waterfall with as many spans as ``/api/v1/traces/{id}``;
  Back returns to the panel; Tab and Enter open a node, Esc closes it;
- the trace search lists what ``/api/v1/traces`` answers;
- ``/api/v1/diff`` ranks productpage-v1 -> details-v1 first, and the diff
  view highlights that edge and lists it first;
- a second sextant with ``--query-token-file``: the page asks for the token,
  then works, and keeps it for the tab.

No view may log a console error (the browser's own log of the 401 that makes
the page ask for the token aside). A screenshot of each view is written to
``<session tmp>/sextant-e2e*/page/`` (or ``$SEXTANT_E2E_SCREENSHOTS``).

Environment:
  CHROMIUM_BIN, CHROMEDRIVER_BIN  default /usr/bin/chromium, /usr/bin/chromedriver
  SEXTANT_E2E_REQUIRE_BROWSER=1   fail instead of skipping when either (or selenium) is missing
  SEXTANT_E2E_PAGE_DIR            serve the page from this folder (``--page-directory``) instead of
                                  the copy compiled into the binary, for working on the page
  SEXTANT_E2E_SCREENSHOTS         folder for the screenshots
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from browser import open_chromium
from conftest import SETTLE_QUIET_S, SETTLE_TIMEOUT_S, ZIPKIN_FLUSH_S
from mesh import BOOKINFO_WITH_TCP, Mesh
from sextant import Sextant, SextantError, http_request, wait_until_settled

CHROMIUM_BIN = Path(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
CHROMEDRIVER_BIN = Path(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
REQUIRE_BROWSER = os.environ.get("SEXTANT_E2E_REQUIRE_BROWSER") == "1"
PAGE_DIR = os.environ.get("SEXTANT_E2E_PAGE_DIR")
VIEWPORT = (1280, 800)
WAIT_S = 20.0

PHASE_REQUESTS = 90  # driver requests per phase: about 29 per edge into ratings-v1, over minRequests (20)
FAULTY = "details-v1"
FAULTY_EDGE = ("workload:default:productpage-v1", "workload:default:details-v1", "http")
DIFF_WINDOW_S = 30
GRAPH_WINDOW = "15m"
QUERY_TOKEN = "page-e2e-query-token"


def _skip_or_fail(message: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"{message} (SEXTANT_E2E_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(message)


# --------------------------------------------------------------------------
# The page's number formats (Sources/SextantServer/Page/sextant.js), as JavaScript's toFixed rounds:
# the exact binary value, ties away from zero.


def to_fixed(value: float, digits: int) -> str:
    quantum = Decimal(1).scaleb(-digits)
    return str(Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP))


def fmt_rate(v: float) -> str:
    if v >= 100:
        return to_fixed(v, 0)
    if v >= 10:
        return to_fixed(v, 1)
    if v >= 1:
        return to_fixed(v, 2)
    return to_fixed(v, 3)


def fmt_pct(ratio: float) -> str:
    return to_fixed(ratio * 100, 1) + "%"


def fmt_ms(v: float) -> str:
    if v >= 100:
        return to_fixed(v, 0)
    if v >= 10:
        return to_fixed(v, 1)
    return to_fixed(v, 2)


def expected_label(edge: dict, mode: str) -> str:
    tcp = edge["protocol"] == "tcp"
    if mode == "errors":
        return "TCP" if tcp else fmt_pct(edge["errorRate"])
    if mode == "latency":
        latency = edge.get("latencyMs")
        return f"{fmt_ms(latency['p50'])} / {fmt_ms(latency['p99'])} ms" if latency else "—"
    return f"{fmt_rate(edge['rps'])} {'conn/s' if tcp else 'rps'}"


def expected_health(edge: dict) -> str:
    """Kiali's thresholds: degraded from 0.1 % 5xx or 10 % 4xx, failing above 10 % 5xx or 20 % 4xx."""
    if edge["protocol"] == "tcp" or not edge["requests"]:
        return "ok"
    codes = {int(code): n for code, n in (edge.get("byCode") or {}).items()}
    c4 = sum(n for code, n in codes.items() if 400 <= code < 500)
    c5 = sum(n for code, n in codes.items() if 500 <= code < 600)
    c5 = max(c5, edge.get("serverErrors") or 0, (edge.get("errors") or 0) - c4)
    r4, r5 = c4 / edge["requests"], c5 / edge["requests"]
    if r5 > 0.1 or r4 > 0.2:
        return "failing"
    if r5 >= 0.001 or r4 >= 0.1:
        return "degraded"
    return "ok"


def edge_id(edge: dict) -> tuple[str, str, str]:
    return edge["source"], edge["target"], edge["protocol"]


# --------------------------------------------------------------------------
# Fixtures


@dataclass
class PageRun:
    sextant: Sextant
    graph: dict  # /api/v1/graph?window=15m once settled
    settled: bool
    baseline_end: float  # unix seconds: phase 1 before, phase 2 after
    diff_end: float
    counts: dict
    access_logs: dict[str, Path]
    node_ids: dict[str, str]


def _page_sextant(name: str, e2e_dir: Path, binary: Path, extra: tuple[str, ...] = ()) -> Sextant:
    workdir = e2e_dir / f"sextant-{name}"
    workdir.mkdir(parents=True, exist_ok=True)
    args = tuple(extra) + (("--page-directory", PAGE_DIR) if PAGE_DIR else ())
    instance = Sextant(name, workdir, binary, extra_args=args)
    try:
        instance.start()
    except SextantError as err:
        pytest.fail(str(err), pytrace=False)
    return instance


@pytest.fixture(scope="module")
def page_run(e2e_dir, sextant_bin):
    instance = _page_sextant("page", e2e_dir, sextant_bin)
    try:
        with Mesh(specs=BOOKINFO_WITH_TCP, zipkin_port=instance.zipkin_port, als_ports=(instance.grpc_port,),
                  workdir=e2e_dir / "page-mesh") as mesh:
            first = mesh.drive(PHASE_REQUESTS)
            baseline_end = first.finished_at + 0.5
            time.sleep(max(0.0, baseline_end + 0.5 - time.time()))
            assert mesh.set_fault(FAULTY, fail_every=1, delay_ms=100, delay_max_ms=0) == {
                "workload": FAULTY, "fail_every": 1, "delay_ms": 100, "delay_max_ms": 0}
            second = mesh.drive(PHASE_REQUESTS)
            assert second.finished_at < baseline_end + DIFF_WINDOW_S - 1, "phase 2 took longer than the diff window"
            counts = mesh.counts()
            access_logs = mesh.wait_for_access_logs(counts)
            # The sidecars stay up until their last Zipkin batch and access-log flush are out.
            graph, settled = wait_until_settled(
                lambda: instance.graph(GRAPH_WINDOW), quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S,
                not_before=second.finished_at + ZIPKIN_FLUSH_S)
            node_ids = mesh.node_ids()
        yield PageRun(instance, graph, settled, baseline_end, baseline_end + DIFF_WINDOW_S, counts, access_logs,
                      node_ids)
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def screenshots(e2e_dir) -> Path:
    folder = Path(os.environ.get("SEXTANT_E2E_SCREENSHOTS") or e2e_dir / "page")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def driver():
    try:
        import selenium  # noqa: F401
    except ImportError:
        _skip_or_fail("selenium is not installed (scripts/setup-test-env.sh)")
    for binary, package in ((CHROMIUM_BIN, "chromium"), (CHROMEDRIVER_BIN, "chromium-driver")):
        if not binary.exists():
            _skip_or_fail(f"{binary} not installed (apt-get install {package}; "
                          f"scripts/install-system-packages.sh --test)")
    browser = open_chromium(VIEWPORT, WAIT_S, CHROMIUM_BIN, CHROMEDRIVER_BIN)
    try:
        yield browser
    finally:
        browser.quit()


# --------------------------------------------------------------------------
# Helpers


def wait_for(browser, predicate, what: str, timeout_s: float = WAIT_S):
    """Polls ``predicate(browser)`` until it returns something truthy; fails naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = predicate(browser)
        except Exception as err:  # an element between two renders, for instance
            value, last = None, err
        if value:
            return value
        if time.monotonic() >= deadline:
            errors = console_entries(browser)
            banner = js(browser, "return document.getElementById('banner').textContent")
            note = f" (last error: {last!r})" if last else ""
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}{note}; page at {browser.current_url}; "
                        f"banner: {banner!r}; console: {errors}", pytrace=False)
        time.sleep(0.1)


def js(browser, script: str, *args):
    return browser.execute_script(script, *args)


def console_entries(browser) -> list[dict]:
    return browser.get_log("browser")


def assert_no_console_errors(browser, allowed: tuple[str, ...] = ()) -> None:
    severe = [e for e in console_entries(browser) if e.get("level") == "SEVERE"
              and not any(a in e.get("message", "") for a in allowed)]
    assert not severe, "console errors:\n" + "\n".join(e["message"] for e in severe)


def open_page(browser, instance: Sextant, fragment: str) -> None:
    browser.get(f"{instance.base_url}/{fragment}")


def shot(browser, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


READ_GRAPH = """
const edges = [...document.querySelectorAll('#graph-viewport .edge')].map((g) => ({
  source: g.dataset.source, target: g.dataset.target, protocol: g.dataset.protocol,
  health: g.dataset.health, changed: g.dataset.changed || null, rank: g.dataset.rank || null,
  ghost: g.dataset.ghost || null, className: g.getAttribute('class'),
  label: g.querySelector('.edge-label') ? g.querySelector('.edge-label').textContent : null,
  halo: Boolean(g.querySelector('.edge-halo')),
}));
const nodes = [...document.querySelectorAll('#graph-viewport .node')].map((g) => {
  const r = g.querySelector('.node-box').getBoundingClientRect();
  return {id: g.dataset.id, health: g.dataset.health, box: [r.left, r.top, r.right, r.bottom]};
});
return {edges, nodes, status: document.getElementById('status').textContent,
        labels: document.getElementById('labels').value};
"""


def read_graph(browser) -> dict:
    return js(browser, READ_GRAPH)


def wait_for_graph(browser, graph: dict, what: str) -> dict:
    """Waits until the drawn graph has the API graph's node and edge counts; returns what is drawn."""
    want = (len(graph["nodes"]), len(graph["edges"]))

    def drawn(b):
        g = read_graph(b)
        return g if (len(g["nodes"]), len(g["edges"])) == want and "Loading" not in g["status"] else None

    return wait_for(browser, drawn, f"{what}: {want[0]} nodes and {want[1]} edges drawn")


def select_value(browser, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, select_id)).select_by_value(value)


def api_get(instance: Sextant, path: str, params: dict) -> dict:
    return instance.get_json(path, params)


# --------------------------------------------------------------------------
# Tests


def test_graph_view_draws_the_api_graph(driver, page_run, screenshots):
    from selenium.webdriver.common.by import By

    graph = page_run.graph
    assert page_run.settled, "the graph was still changing 30 s after the traffic"
    api_edges = {edge_id(e): e for e in graph["edges"]}
    assert len(api_edges) == len(graph["edges"]), f"duplicate edges in the API graph: {graph['edges']}"
    # The run's own facts: the faulty edge and the edges into ratings-v1 fail (> 10 % 5xx), the
    # TCP hop is there.
    failing = [FAULTY_EDGE] + [k for k in api_edges if k[1] == "workload:default:ratings-v1"]
    for key in failing:
        edge = api_edges.get(key)
        assert edge and edge["serverErrors"] / edge["requests"] > 0.1, f"{key}: {edge}"
    assert any(k[2] == "tcp" for k in api_edges), f"no TCP edge in {list(api_edges)}"

    open_page(driver, page_run.sextant, f"#/graph?window={GRAPH_WINDOW}")
    drawn = wait_for_graph(driver, graph, "the graph view")

    assert sorted(n["id"] for n in drawn["nodes"]) == sorted(n["id"] for n in graph["nodes"])
    drawn_edges = {(e["source"], e["target"], e["protocol"]): e for e in drawn["edges"]}
    assert len(drawn_edges) == len(drawn["edges"]), f"an edge is drawn twice: {drawn['edges']}"
    assert set(drawn_edges) == set(api_edges)
    for key, edge in api_edges.items():
        mine = drawn_edges[key]
        assert mine["health"] == expected_health(edge), f"{key}: drawn {mine}, API {edge}"
        assert mine["label"] == expected_label(edge, "rps"), f"{key}: drawn {mine}, API {edge}"
        if edge["protocol"] == "tcp":
            assert "proto-tcp" in mine["className"].split(), mine
    for key in failing:
        assert drawn_edges[key]["health"] == "failing", drawn_edges[key]

    # No two node boxes overlap.
    boxes = [(n["id"], n["box"]) for n in drawn["nodes"]]
    overlaps = [(a, b) for i, (a, ra) in enumerate(boxes) for b, rb in boxes[i + 1:]
                if min(ra[2], rb[2]) - max(ra[0], rb[0]) > 0.5 and min(ra[3], rb[3]) - max(ra[1], rb[1]) > 0.5]
    assert not overlaps, f"overlapping node boxes: {overlaps}; boxes {boxes}"
    shot(driver, screenshots, "graph")

    for mode in ("errors", "latency"):
        select_value(driver, "labels", mode)
        drawn = wait_for(driver, lambda b: (g := read_graph(b))["labels"] == mode and all(
            e["label"] == expected_label(api_edges[(e["source"], e["target"], e["protocol"])], mode)
            for e in g["edges"]) and g, f"every edge label in {mode} mode")
        if mode == "errors":
            shot(driver, screenshots, "graph-errors")
    assert "labels=latency" in driver.current_url
    select_value(driver, "labels", "rps")
    wait_for(driver, lambda b: read_graph(b)["labels"] == "rps", "the requests/s labels again")

    # A refresh of the same graph keeps every node where it was.
    before = {n["id"]: n["box"] for n in read_graph(driver)["nodes"]}
    status = read_graph(driver)["status"]
    time.sleep(1.1)  # the status line names the second the graph was read
    driver.find_element(By.ID, "refresh").click()
    after = wait_for(driver, lambda b: (g := read_graph(b))["status"] not in (status, "Loading…") and g,
                     "the refreshed graph")
    assert {n["id"]: n["box"] for n in after["nodes"]} == before

    # The other graph types: the API's nodes and edges again.
    for graph_type in ("app", "versionedApp", "service"):
        other = api_get(page_run.sextant, "/api/v1/graph", {"graphType": graph_type, "window": GRAPH_WINDOW})
        select_value(driver, "graph-type", graph_type)
        mine = wait_for(driver, lambda b: (g := read_graph(b)) and sorted(n["id"] for n in g["nodes"]) == sorted(
            n["id"] for n in other["nodes"]) and g, f"the {graph_type} graph")
        assert sorted((e["source"], e["target"], e["protocol"], e["label"]) for e in mine["edges"]) == sorted(
            (*edge_id(e), expected_label(e, "rps")) for e in other["edges"]), graph_type
        assert f"type={graph_type}" in driver.current_url
        if graph_type == "service":
            shot(driver, screenshots, "graph-services")
    select_value(driver, "graph-type", "workload")
    assert_no_console_errors(driver)


def test_edge_panel_and_trace_waterfall(driver, page_run, screenshots):
    from selenium.webdriver.common.by import By

    graph = page_run.graph
    edge = next(e for e in graph["edges"] if edge_id(e) == FAULTY_EDGE)
    open_page(driver, page_run.sextant, f"#/graph?window={GRAPH_WINDOW}")
    wait_for_graph(driver, graph, "the graph view")
    source, target, protocol = FAULTY_EDGE
    driver.find_element(
        By.CSS_SELECTOR, f'.edge[data-source="{source}"][data-target="{target}"][data-protocol="{protocol}"] .edge-label'
    ).click()

    def panel_fields(b):
        return js(b, """
          const body = document.getElementById('panel-body');
          if (document.getElementById('panel').hidden || body.dataset.kind !== 'edge') return null;
          const fields = Object.fromEntries([...body.querySelectorAll('dd[data-field]')].map((d) => [d.dataset.field, d.textContent]));
          const codes = Object.fromEntries([...body.querySelectorAll('tr[data-code]')].map((r) => [r.dataset.code, r.children[1].textContent]));
          const charts = body.querySelector('.charts');
          return {source: body.dataset.source, target: body.dataset.target, protocol: body.dataset.protocol, fields, codes,
                  sources: [...body.querySelectorAll('.sources li')].map((l) => l.dataset.source),
                  points: charts && charts.dataset.points ? Number(charts.dataset.points) : null,
                  charts: body.querySelectorAll('.chart').length,
                  traces: [...body.querySelectorAll('a.trace-link')].map((a) => a.dataset.traceId)};
        """)

    panel = wait_for(driver, lambda b: (p := panel_fields(b)) and p["points"] is not None and p,
                     "the edge panel with its charts")
    assert (panel["source"], panel["target"], panel["protocol"]) == FAULTY_EDGE
    latency = edge["latencyMs"]
    assert panel["fields"]["requests"] == str(edge["requests"]), panel
    assert panel["fields"]["rps"] == fmt_rate(edge["rps"]), panel
    assert panel["fields"]["errorRate"] == fmt_pct(edge["errorRate"]), panel
    assert panel["fields"]["p50"] == f"{fmt_ms(latency['p50'])} ms", panel
    assert panel["fields"]["p99"] == f"{fmt_ms(latency['p99'])} ms", panel
    assert panel["codes"] == {code: str(n) for code, n in edge["byCode"].items()}, panel
    assert sorted(panel["sources"]) == sorted(edge["sources"]), panel
    assert panel["charts"] == 3, panel
    # The charts come from /api/v1/signals/range over the same window: its totals are the edge's.
    series = api_get(page_run.sextant, "/api/v1/signals/range", {
        "graphType": "workload", "source": source, "target": target, "protocol": protocol,
        "window": GRAPH_WINDOW, "end": graph["endUnixSeconds"]})
    assert series["total"]["requests"] == edge["requests"], (series["total"], edge)
    assert series["total"]["errors"] == edge["errors"], (series["total"], edge)
    assert panel["points"] == len(series["points"]) > 0
    examples = edge.get("exampleTraces") or {}
    assert panel["traces"] and set(panel["traces"]) <= {examples.get("slowest"), examples.get("error")}, (panel, examples)
    shot(driver, screenshots, "panel")

    trace_id = examples.get("error") if examples.get("error") in panel["traces"] else panel["traces"][0]
    trace = api_get(page_run.sextant, f"/api/v1/traces/{trace_id}", {})
    driver.find_element(By.CSS_SELECTOR, f'#panel-body a.trace-link[data-trace-id="{trace_id}"]').click()
    spans = wait_for(driver, lambda b: "#/trace/" in b.current_url and js(
        b, "return document.querySelectorAll('#waterfall .span').length"), "the waterfall")
    assert spans == len(trace["spans"]), f"waterfall rows {spans}, trace API spans {len(trace['spans'])}"
    drawn_ids = js(driver, "return [...document.querySelectorAll('#waterfall .span')].map((g) => g.dataset.spanId)")
    assert sorted(drawn_ids) == sorted(s["spanId"] for s in trace["spans"])
    errors = [s for s in trace["spans"] if s["error"]]
    assert js(driver, "return document.querySelectorAll('#waterfall .span.error').length") == len(errors)
    # A click on a span shows its tags.
    span = errors[0] if errors else trace["spans"][0]
    driver.find_element(By.CSS_SELECTOR, f'#waterfall .span[data-span-id="{span["spanId"]}"] .span-bar').click()
    tags = wait_for(driver, lambda b: js(b, """
        return Object.fromEntries([...document.querySelectorAll('#span-details table.tags tr')]
          .map((r) => [r.children[0].textContent, r.children[1].textContent]));"""), "the span's tags")
    assert tags == span["tags"]
    shot(driver, screenshots, "trace")

    # Back: the graph again, with the edge's panel open.
    driver.back()
    wait_for(driver, lambda b: (p := panel_fields(b)) and (p["source"], p["target"]) == FAULTY_EDGE[:2],
             "the edge panel again after Back")
    assert_no_console_errors(driver)


def test_keyboard_opens_and_closes_a_node(driver, page_run):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_page(driver, page_run.sextant, f"#/graph?window={GRAPH_WINDOW}")
    wait_for_graph(driver, page_run.graph, "the graph view")
    js(driver, "document.activeElement.blur(); document.getElementById('graph-svg').focus()")
    focused = None
    for _ in range(60):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused = js(driver, "const a = document.activeElement; return a && a.closest && a.closest('#graph-viewport .node') ? a.dataset.id : null")
        if focused:
            break
    assert focused, "Tab never reached a node of the graph"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    wait_for(driver, lambda b: js(b, "return !document.getElementById('panel').hidden && "
                                     "document.getElementById('panel-body').dataset.id") == focused,
             f"the panel of {focused}")
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait_for(driver, lambda b: js(b, "return document.getElementById('panel').hidden"), "the panel to close")
    assert js(driver, "return document.activeElement.dataset.id") == focused, "focus must return to the node"
    assert_no_console_errors(driver)


def test_trace_search(driver, page_run, screenshots):
    answer = api_get(page_run.sextant, "/api/v1/traces", {"status": "error", "limit": 20, "window": "1h"})
    assert answer["traces"], "the run has failed calls: there must be traces with errors"
    open_page(driver, page_run.sextant, "#/traces?errors=1")
    ids = wait_for(driver, lambda b: js(b, "return [...document.querySelectorAll('#trace-results tr.trace-row')]"
                                           ".map((r) => r.dataset.traceId)"), "the trace list")
    # The mesh has stopped: the page's search answers what the API answered.
    assert ids == [t["traceId"] for t in answer["traces"]]
    assert js(driver, "return document.getElementById('trace-errors').checked") is True
    shot(driver, screenshots, "traces")
    assert_no_console_errors(driver)


def test_diff_ranks_and_highlights_the_failing_edge(driver, page_run, screenshots):
    params = {"graphType": "workload", "window": f"{DIFF_WINDOW_S}s", "end": f"{page_run.diff_end:.3f}",
              "baselineEnd": f"{page_run.baseline_end:.3f}"}
    diff = api_get(page_run.sextant, "/api/v1/diff", params)
    assert diff["edges"], f"GET /api/v1/diff {params}: no changes: {json.dumps(diff)[:2000]}"
    first = diff["edges"][0]
    assert edge_id(first) == FAULTY_EDGE, f"ranked first: {first}; all: {json.dumps(diff['edges'])[:3000]}"
    assert any(c["kind"] in ("newErrors", "errorRateIncrease") for c in first["changes"]), first

    fragment = (f"#/diff?window={DIFF_WINDOW_S}s&end={page_run.diff_end:.3f}"
                f"&baselineEnd={page_run.baseline_end:.3f}")
    open_page(driver, page_run.sextant, fragment)
    drawn = wait_for(driver, lambda b: (g := read_graph(b)) and any(e["changed"] for e in g["edges"]) and g,
                     "highlighted edges in the diff view")
    changed = {(e["source"], e["target"], e["protocol"]): e for e in drawn["edges"] if e["changed"] == "true"}
    assert set(changed) == {edge_id(e) for e in diff["edges"]}, (changed, diff["edges"])
    mine = changed[FAULTY_EDGE]
    assert mine["rank"] == "1" and mine["halo"], mine
    listed = js(driver, """return [...document.querySelectorAll('#diff-items .diff-item.diff-edge')]
                           .map((li) => [li.dataset.source, li.dataset.target, li.dataset.protocol])""")
    assert [tuple(x) for x in listed] == [edge_id(e) for e in diff["edges"]]
    shot(driver, screenshots, "diff")
    assert_no_console_errors(driver)


@pytest.fixture(scope="module")
def token_sextant(page_run, e2e_dir, sextant_bin):
    """A sextant that needs a query token, fed the page run's access-log files."""
    folder = e2e_dir / "page-token"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "query-token").write_text(QUERY_TOKEN + "\n")
    instance = _page_sextant("page-token", e2e_dir, sextant_bin, ("--query-token-file", str(folder / "query-token")))
    try:
        for workload, path in sorted(page_run.access_logs.items()):
            response = instance.post_access_log(page_run.node_ids[workload], path.read_bytes())
            assert response.status == 200, response.describe()
        yield instance
    finally:
        instance.stop()


def test_query_token_is_asked_once(driver, token_sextant, screenshots):
    from selenium.webdriver.common.by import By

    headers = {"Authorization": f"Bearer {QUERY_TOKEN}"}
    url = f"{token_sextant.base_url}/api/v1/graph?graphType=workload&window={GRAPH_WINDOW}"
    assert http_request("GET", url).status == 401
    graph, _ = wait_until_settled(lambda: http_request("GET", url, headers=headers).json(), quiet_s=1.0, timeout_s=15)
    assert graph["edges"], graph

    open_page(driver, token_sextant, f"#/graph?window={GRAPH_WINDOW}")
    wait_for(driver, lambda b: js(b, "return document.getElementById('token-dialog').open"), "the token form")
    shot(driver, screenshots, "token")
    driver.find_element(By.ID, "token-input").send_keys("not-the-token")
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait_for(driver, lambda b: js(b, "return document.getElementById('token-dialog').open && "
                                     "!document.getElementById('token-error').hidden"), "the refused-token note")
    driver.find_element(By.ID, "token-input").send_keys(QUERY_TOKEN)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait_for_graph(driver, graph, "the graph after the token")
    assert not js(driver, "return document.getElementById('token-dialog').open")
    # Kept for the tab: a reload asks nothing.
    driver.refresh()
    wait_for_graph(driver, graph, "the graph after a reload")
    assert not js(driver, "return document.getElementById('token-dialog').open")
    # The browser logs each 401 by itself; nothing else may be logged.
    assert_no_console_errors(driver, allowed=("401 (Unauthorized)",))
