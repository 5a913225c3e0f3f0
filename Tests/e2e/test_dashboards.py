"""The Grafana dashboards of ``dashboards/``: their structure, and their queries against a real Prometheus.

Static: every dashboard parses and has the structure Grafana reads (unique ids and uids, a grid
of 24 columns without overlaps, the data source by variable), every variable a query uses is
defined, rates take ``$__rate_interval``, and every expression and variable query, variables
substituted, parses (``promtool check rules``); the provisioning files and ``prometheus.yml``
parse (``promtool check config``) and agree with each other.

Dynamic: a real Envoy mesh (Bookinfo with the TCP hop) writes Istio's JSON access logs, which a
tailer posts to a real Sextant every second; a real Prometheus runs ``dashboards/prometheus.yml``
(targets and intervals changed) against it. Then every variable lists what the run has, every
target of every panel answers with finite data for every value of its variables where the run has
the series it selects (and nothing or zero where it has not), every panel that sums a raw Istio
counter equals what the apps counted, the exact quantiles are within 1 % of the quantiles of the
logged durations where ``histogram_quantile`` is not, and the collector's dashboard shows the
rejections the test provoked and the pairing ratio the run implies. Queries are evaluated at one
instant after the minute of the last calls is complete, ``$__rate_interval`` standing for a range
that covers the run.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from mesh import (
    BOOKINFO_WITH_TCP, REPO_ROOT, UNKNOWN, Mesh, TrafficResult, free_ports, http_get, service_fqdn, spawn,
    stop_processes,
)
from sextant import Sextant, http_request
from test_federation import PROMETHEUS_BIN, PROMTOOL_BIN, _skip_or_fail

DASHBOARDS_DIR = REPO_ROOT / "dashboards"
DASHBOARD_FILES = ("mesh.json", "service.json", "workload.json", "sextant.json")
PROMETHEUS_CONFIG = DASHBOARDS_DIR / "prometheus.yml"
DATASOURCE_FILE = DASHBOARDS_DIR / "provisioning" / "datasources" / "sextant.yaml"
PROVIDER_FILE = DASHBOARDS_DIR / "provisioning" / "dashboards" / "sextant.yaml"
QUANTILE_GAUGE = "sextant_request_duration_quantile_seconds"
QUANTILE_GAUGE_LABELS = ("reporter", "destination_workload", "destination_workload_namespace",
                         "destination_canonical_service", "destination_service", "destination_service_name",
                         "destination_service_namespace", "window", "percentile")
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "table"}
GRID_COLUMNS = 24
# Grafana's own variables; $__rate_interval is the one the queries should use for rates.
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
                     "__dashboard", "__org", "__user", "__from", "__to", "__timeFilter"}
# $var, ${var}, ${var:format}, [[var]], [[var:format]]
VARIABLE_REF = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
RANGE_SELECTOR = re.compile(r"\[([^\]]*)\]")
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv|resets|changes|\w+_over_time)\s*\(")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?(\w+)\s*\)\s*$", re.S)
# Values the static check puts in for variables (a custom variable's first option otherwise).
SAMPLE_VALUE = "sample"
SAMPLE_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "30m"}


# --------------------------------------------------------------------------
# Reading dashboards


def load_dashboards() -> dict[str, dict]:
    return {name: json.loads((DASHBOARDS_DIR / name).read_text()) for name in DASHBOARD_FILES}


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, rows included, with the panels of collapsed rows."""
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def query_panels(dashboard: dict) -> list[dict]:
    return [p for p in all_panels(dashboard) if p.get("type") != "row"]


def targets(dashboard: dict) -> list[tuple[dict, dict]]:
    """(panel, target) of every query."""
    return [(p, t) for p in query_panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable: dict) -> str:
    query = variable.get("query")
    return query.get("query", "") if isinstance(query, dict) else (query or "")


def referenced_variables(text: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in VARIABLE_REF.finditer(text)]


def substitute(text: str, values: dict[str, str]) -> str:
    """``text`` with every variable reference replaced by ``values[name]`` (KeyError when missing)."""
    return VARIABLE_REF.sub(lambda m: values[next(g for g in m.groups() if g)], text)


def custom_options(variable: dict) -> list[str]:
    return [o.strip() for o in variable_query(variable).split(",") if o.strip()]


def sample_values(dashboard: dict) -> dict[str, str]:
    values = dict(SAMPLE_BUILTINS)
    for name, variable in variables(dashboard).items():
        values[name] = custom_options(variable)[0] if variable["type"] == "custom" else SAMPLE_VALUE
    return values


def without_strings(expr: str) -> str:
    return STRING_LITERAL.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:istio|sextant)_[a-z_]+)\b", without_strings(expr)))


# --------------------------------------------------------------------------
# Static checks


def test_dashboards_parse_with_unique_uids_and_titles():
    dashboards = load_dashboards()
    uids = [d.get("uid") for d in dashboards.values()]
    titles = [d.get("title") for d in dashboards.values()]
    assert all(uids) and len(set(uids)) == len(uids), f"dashboard uids must be set and unique: {uids}"
    assert all(titles) and len(set(titles)) == len(titles), f"dashboard titles must be set and unique: {titles}"
    for name, d in dashboards.items():
        assert d.get("id") is None, f"{name}: a provisioned dashboard has no id of its own (id: null)"
        assert isinstance(d.get("schemaVersion"), int) and d["schemaVersion"] >= 36, f"{name}: schemaVersion"
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"]), f"{name}: uid {d['uid']!r} is not a Grafana uid"
        assert isinstance(d.get("panels"), list) and d["panels"], f"{name}: no panels"
        assert {"from", "to"} <= set(d.get("time", {})), f"{name}: no time range"
        assert "sextant" in d.get("tags", []), f"{name}: the dashboard links find the others by the tag 'sextant'"


def _cells(grid: dict) -> set[tuple[int, int]]:
    return {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_panel_structure(name):
    dashboard = load_dashboards()[name]
    problems = []
    ids = [p.get("id") for p in all_panels(dashboard)]
    if len(set(ids)) != len(ids) or not all(isinstance(i, int) for i in ids):
        problems.append(f"panel ids must be unique integers: {ids}")
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(dashboard):
        title = f"panel {panel.get('id')} {panel.get('title')!r}"
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in "xywh") or grid["x"] + grid["w"] > GRID_COLUMNS:
            problems.append(f"{title}: gridPos {grid} is not inside {GRID_COLUMNS} columns")
            continue
        for cell in _cells(grid):
            if cell in taken:
                problems.append(f"{title} overlaps {taken[cell]} at {cell}")
                break
            taken[cell] = title
        if not panel.get("title"):
            problems.append(f"{title}: no title")
        if panel.get("type") == "row":
            continue
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{title}: type {panel.get('type')!r} is not one of {sorted(PANEL_TYPES)}")
        if not panel.get("description"):
            problems.append(f"{title}: no description")
        if panel.get("datasource") != DATASOURCE_REF:
            problems.append(f"{title}: datasource {panel.get('datasource')} (expected {DATASOURCE_REF})")
        panel_targets = panel.get("targets") or []
        refs = [t.get("refId") for t in panel_targets]
        if not panel_targets or len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"{title}: targets need unique refIds: {refs}")
        for t in panel_targets:
            if t.get("datasource") != DATASOURCE_REF or not t.get("expr"):
                problems.append(f"{title}: target {t.get('refId')} needs an expr and datasource {DATASOURCE_REF}")
        if panel["type"] == "table":
            if not all(t.get("instant") and t.get("format") == "table" for t in panel_targets):
                problems.append(f"{title}: a table's targets are instant queries in table format")
            organize = [x for x in panel.get("transformations", []) if x.get("id") == "organize"]
            renamed = organize[0]["options"].get("renameByName", {}) if organize else {}
            missing = [r for r in refs if f"Value #{r}" not in renamed]
            if not any(x.get("id") == "merge" for x in panel.get("transformations", [])) or missing:
                problems.append(f"{title}: a table merges its queries and names every value column "
                                f"(unnamed: {missing})")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if panel["type"] != "table" and not unit:
            problems.append(f"{title}: no unit")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_variables(name):
    """Every variable a query uses is defined (a variable's query only uses those defined before it)."""
    dashboard = load_dashboards()[name]
    problems = []
    defined: set[str] = set(BUILTIN_VARIABLES)
    listed = list(variables(dashboard).values())
    names = [v["name"] for v in listed]
    if len(set(names)) != len(names):
        problems.append(f"variable names repeat: {names}")
    if not listed or listed[0]["type"] != "datasource" or listed[0]["name"] != "datasource" \
            or listed[0].get("query") != "prometheus":
        problems.append("the first variable is the Prometheus data source, named 'datasource'")
    for variable in listed:
        query = variable_query(variable)
        unknown = set(referenced_variables(query)) - defined
        if unknown:
            problems.append(f"variable {variable['name']}: its query uses {sorted(unknown)}, not defined before it")
        if variable["type"] == "query":
            if not LABEL_VALUES.match(query):
                problems.append(f"variable {variable['name']}: query {query!r} is not label_values(...)")
            if variable.get("datasource") != DATASOURCE_REF:
                problems.append(f"variable {variable['name']}: datasource {variable.get('datasource')}")
        elif variable["type"] == "custom" and not custom_options(variable):
            problems.append(f"variable {variable['name']}: no options")
        defined.add(variable["name"])
    for panel, t in targets(dashboard):
        unknown = set(referenced_variables(t["expr"])) - defined
        if unknown:
            problems.append(f"panel {panel['id']} {panel['title']!r} {t['refId']}: undefined {sorted(unknown)}")
    unused = set(names) - {"datasource"} - {
        ref for _, t in targets(dashboard) for ref in referenced_variables(t["expr"])} - {
        ref for v in listed for ref in referenced_variables(variable_query(v))}
    if unused:
        problems.append(f"variables no query uses: {sorted(unused)}")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_rates_use_rate_interval(name):
    """Every range in a query is ``[$__rate_interval]``, never a fixed window such as ``[5m]``."""
    problems = []
    for panel, t in targets(load_dashboards()[name]):
        bare = without_strings(t["expr"])
        ranges = RANGE_SELECTOR.findall(bare)
        wrong = [r for r in ranges if r != "$__rate_interval"]
        if wrong:
            problems.append(f"panel {panel['id']} {panel['title']!r} {t['refId']}: ranges {wrong}: {t['expr']}")
        if len(RANGE_FUNCTIONS.findall(bare)) > len(ranges):
            problems.append(f"panel {panel['id']} {panel['title']!r} {t['refId']}: a rate without a range")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def _promtool_check_rules(rules: dict, tmp_path: Path) -> None:
    if not PROMTOOL_BIN.exists():
        _skip_or_fail(f"{PROMTOOL_BIN} not installed (apt-get install prometheus)")
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False, width=1000))
    result = subprocess.run([str(PROMTOOL_BIN), "check", "rules", str(path)], capture_output=True, timeout=60)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"promtool check rules {path}:\n{output}"


def test_expressions_parse_with_promtool(tmp_path):
    """Each target's expression and each variable's selector, variables substituted, as a recording rule."""
    groups = []
    for name, dashboard in load_dashboards().items():
        values = sample_values(dashboard)
        stem = name.removesuffix(".json")
        rules = []
        for panel, t in targets(dashboard):
            rules.append({"record": f"dashboard:{stem}:panel{panel['id']}_{t['refId'].lower()}",
                          "expr": substitute(t["expr"], values)})
        for variable in variables(dashboard).values():
            match = LABEL_VALUES.match(variable_query(variable)) if variable["type"] == "query" else None
            if match and match.group(1):
                rules.append({"record": f"dashboard:{stem}:variable_{variable['name']}",
                              "expr": substitute(match.group(1), values)})
        groups.append({"name": f"dashboard-{stem}", "rules": rules})
    assert sum(len(g["rules"]) for g in groups) > 50
    _promtool_check_rules({"groups": groups}, tmp_path)


def _jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config.get("scrape_configs", [])}


def federation_job(config: dict) -> dict:
    jobs = [job for job in _jobs(config).values() if job.get("metrics_path") == "/federate"]
    assert len(jobs) == 1, f"prometheus.yml needs one job with metrics_path /federate: {list(_jobs(config))}"
    return jobs[0]


def self_job(config: dict) -> dict:
    jobs = [job for job in _jobs(config).values() if job.get("metrics_path", "/metrics") == "/metrics"]
    assert len(jobs) == 1, f"prometheus.yml needs one job scraping Sextant's /metrics: {list(_jobs(config))}"
    return jobs[0]


def test_prometheus_config():
    """prometheus.yml federates istio_* and the exact quantiles with honor_labels, and keeps sextant_* of /metrics."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    federate = federation_job(config)
    assert federate.get("honor_labels") is True, "the federation job must honor Sextant's labels"
    matches = federate.get("params", {}).get("match[]", [])
    assert '{__name__=~"istio_.*"}' in matches, matches
    assert f'{{__name__="{QUANTILE_GAUGE}"}}' in matches, matches
    own = self_job(config)
    relabel = own.get("metric_relabel_configs", [])
    assert {"source_labels": ["__name__"], "regex": "sextant_.*", "action": "keep"} in relabel, relabel
    assert {"source_labels": ["__name__"], "regex": QUANTILE_GAUGE, "action": "drop"} in relabel, (
        "the exact quantiles come through federation; /metrics would store them twice")
    if not PROMTOOL_BIN.exists():
        _skip_or_fail(f"{PROMTOOL_BIN} not installed (apt-get install prometheus)")
    result = subprocess.run([str(PROMTOOL_BIN), "check", "config", str(PROMETHEUS_CONFIG)],
                            capture_output=True, timeout=60)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"promtool check config {PROMETHEUS_CONFIG}:\n{output}"


def test_provisioning_files():
    """The data source is a Prometheus whose timeInterval is the federation job's scrape interval; the
    provider loads a folder of dashboard files."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    federate = federation_job(config)
    scrape_interval = federate.get("scrape_interval") or config.get("global", {}).get("scrape_interval")
    datasources = yaml.safe_load(DATASOURCE_FILE.read_text())
    assert datasources.get("apiVersion") == 1, datasources
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source.get("uid") and source.get("url"), source
    assert source.get("jsonData", {}).get("timeInterval") == scrape_interval, (
        f"jsonData.timeInterval {source.get('jsonData', {}).get('timeInterval')!r} must be the federation "
        f"scrape interval {scrape_interval!r}")
    providers = yaml.safe_load(PROVIDER_FILE.read_text())
    assert providers.get("apiVersion") == 1, providers
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider.get("options", {}).get("path"), provider


def test_readme_describes_dashboards():
    text = (DASHBOARDS_DIR / "README.md").read_text()
    missing = [f for f in DASHBOARD_FILES + ("prometheus.yml", "provisioning/datasources/sextant.yaml",
                                             "provisioning/dashboards/sextant.yaml") if f"`{f}`" not in text]
    missing += [label for label in (QUANTILE_GAUGE,) + QUANTILE_GAUGE_LABELS if f"`{label}`" not in text]
    assert not missing, f"dashboards/README.md does not name {missing}"
    for name, dashboard in load_dashboards().items():
        assert dashboard["title"] in text, f"dashboards/README.md does not name the dashboard {dashboard['title']!r}"


@pytest.mark.parametrize("name", ("service.json", "workload.json"))
def test_exact_quantiles_beside_interpolated_ones(name):
    """The service and workload dashboards draw Sextant's exact quantiles and histogram_quantile over
    Envoy's buckets in the same panels, for p50, p90 and p99."""
    both = []
    for panel in query_panels(load_dashboards()[name]):
        exprs = [t["expr"] for t in panel.get("targets", [])]
        exact = {m for e in exprs if QUANTILE_GAUGE in e for m in re.findall(r'percentile="(\d+)"', e)}
        interpolated = {m for e in exprs if "istio_request_duration_milliseconds_bucket" in e
                        for m in re.findall(r"histogram_quantile\((0\.\d+),", e)}
        if exact == {"50", "90", "99"} and interpolated == {"0.5", "0.9", "0.99"}:
            both.append(panel["title"])
    assert both, f"{name}: no panel shows {QUANTILE_GAUGE} beside histogram_quantile(...) for p50, p90 and p99"


# --------------------------------------------------------------------------
# Dynamic: a real mesh, a real Sextant, a real Prometheus federating it
#
# The sidecars write Istio's JSON access log; a tailer posts each file's new lines to Sextant every
# second (POST /api/v1/accesslogs, as a log shipper would), so Sextant's counters grow while
# Prometheus scrapes them every two seconds, and Sextant's durations are exactly those of the files,
# from which the test takes the exact quantiles. details-v1 sleeps 110-140 ms, spread evenly: every
# duration falls inside Envoy's bucket 100-250 ms, where histogram_quantile interpolates linearly.

SCRAPE_INTERVAL = "2s"
DASHBOARD_REQUESTS = int(os.environ.get("SEXTANT_E2E_DASHBOARD_REQUESTS", "360"))
DRIVER_CONCURRENCY = 4
SLOW_WORKLOAD = "details-v1"
SLOW_DELAY_MS = (110, 140)
DASHBOARD_MESH = tuple(
    replace(spec, delay_ms=SLOW_DELAY_MS[0], delay_max_ms=SLOW_DELAY_MS[1]) if spec.name == SLOW_WORKLOAD else spec
    for spec in BOOKINFO_WITH_TCP
)
# The last complete minute must hold this much traffic, so that every edge has calls in the 1m window.
LAST_MINUTE_TRAFFIC_S = 8.0
TOP_UP_REQUESTS = 40
PROMETHEUS_TIMEOUT_S = 45.0
# Istio's counters count a call this long after it is stored, with the peer its other proxy's report
# named if that came by then: more than the tailer's second plus Envoy's half-second flush.
PAIRING_GRACE_S = 10
# Sextant's sketches promise quantiles within 1 % (a bucket's representative value is within 1 % of
# every value in it); the slack is for floating point.
QUANTILE_TOLERANCE = 0.01 * (1 + 1e-9)


class LogTailer:
    """Posts the complete lines each sidecar's access log gained, every ``interval_s`` seconds, to Sextant."""

    def __init__(self, sextant: Sextant, files: dict[str, Path], node_ids: dict[str, str], interval_s: float = 1.0):
        self.sextant = sextant
        self.files = files
        self.node_ids = node_ids
        self.interval_s = interval_s
        self.offsets = {name: 0 for name in files}
        self.posted_lines = {name: 0 for name in files}
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "LogTailer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.post_new_lines()

    def post_new_lines(self) -> None:
        with self._lock:
            for name, path in self.files.items():
                try:
                    with open(path, "rb") as f:
                        f.seek(self.offsets[name])
                        data = f.read()
                except FileNotFoundError:
                    continue
                complete = data[: data.rfind(b"\n") + 1]
                if not complete:
                    continue
                lines = sum(1 for line in complete.splitlines() if line.strip())
                self.offsets[name] += len(complete)
                self.posted_lines[name] += lines
                try:
                    response = self.sextant.post_access_log(self.node_ids[name], complete)
                except OSError as err:
                    self.problems.append(f"{name}: {lines} lines -> {err!r}")
                    continue
                body = response.json() if response.status == 200 else {}
                if body.get("accepted") != lines or body.get("rejected") != 0:
                    self.problems.append(f"{name}: {lines} lines -> {response.describe(500)}")


@dataclass
class DashboardRun:
    prometheus_port: int
    started_at: float  # Prometheus started (before any data)
    evaluated_at: float  # the instant every query is evaluated at
    truth_http: dict  # {(source, destination): {code: count}}
    truth_tcp: dict  # {(source, destination): {"connections", "requestBytes", "responseBytes"}}
    workloads: dict[str, str]  # workload -> service
    durations_ms: dict[str, list[int]]  # "destination" / "source": durations of the calls to SLOW_WORKLOAD
    sextant: Sextant
    prometheus_log: Path

    def __repr__(self) -> str:  # pytest prints fixtures in tracebacks; keep it short
        return (f"DashboardRun(prometheus 127.0.0.1:{self.prometheus_port}, evaluated_at={self.evaluated_at:.3f}, "
                f"$__rate_interval={self.rate_range})")

    @property
    def rate_range(self) -> str:
        """What $__rate_interval becomes: a range that covers the whole run."""
        return f"{math.ceil(self.evaluated_at - self.started_at) + 5}s"

    def query(self, promql: str) -> dict:
        params = urllib.parse.urlencode({"query": promql, "time": f"{self.evaluated_at:.3f}"})
        status, body = http_get(f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?{params}", timeout=30)
        answer = json.loads(body) if body[:1] == b"{" else {}
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"Prometheus query {promql!r} -> {status}: {body[:1000]!r}")
        return answer["data"]

    def label_values(self, label: str, selector: str | None) -> list[str]:
        params = [("start", f"{self.started_at:.3f}"), ("end", f"{self.evaluated_at:.3f}")]
        if selector:
            params.append(("match[]", selector))
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/label/{label}/values?{urllib.parse.urlencode(params)}"
        status, body = http_get(url, timeout=30)
        answer = json.loads(body) if body[:1] == b"{" else {}
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"GET {url} -> {status}: {body[:1000]!r}")
        return sorted(answer["data"])


def _prometheus_config(sextant: Sextant) -> dict:
    """dashboards/prometheus.yml aimed at ``sextant``, every interval SCRAPE_INTERVAL."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = dict(config.get("global", {}), scrape_interval=SCRAPE_INTERVAL,
                            evaluation_interval=SCRAPE_INTERVAL)
    for job in config["scrape_configs"]:
        job["scrape_interval"] = SCRAPE_INTERVAL
        job["scrape_timeout"] = SCRAPE_INTERVAL
        job["static_configs"] = [{"targets": [f"127.0.0.1:{sextant.http_port}"]}]
    return config


def _merge_traffic(first: TrafficResult, second: TrafficResult) -> TrafficResult:
    answers = dict(first.answers)
    for key, n in second.answers.items():
        answers[key] = answers.get(key, 0) + n
    return TrafficResult(sent=first.sent + second.sent, not_found_sent=first.not_found_sent + second.not_found_sent,
                         answers=answers, started_at=first.started_at, finished_at=second.finished_at)


def _durations(path: Path, upstream_cluster: str | None = None) -> list[int]:
    """``duration`` (ms) of a JSON access log's HTTP lines (of one upstream cluster when given)."""
    result = []
    for line in path.read_bytes().splitlines():
        entry = json.loads(line)
        if entry.get("protocol") and (upstream_cluster is None or entry.get("upstream_cluster") == upstream_cluster):
            result.append(int(entry["duration"]))
    return result


def _provoke_rejections(sextant: Sextant, node_id: str) -> None:
    """One Zipkin request rejected whole and one access-log line rejected on its own."""
    response = http_request("POST", f"http://127.0.0.1:{sextant.zipkin_port}/api/v2/spans", body=b"[{not json",
                            headers={"Content-Type": "application/json"})
    assert response.status == 400, response.describe()
    line = {"start_time": "2024-01-01T00:00:00.000Z", "method": "GET", "path": "/", "protocol": "HTTP/1.1",
            "response_code": 200, "duration": -3, "authority": "details:9080",
            "upstream_cluster": "inbound|9080||"}
    response = sextant.post_access_log(node_id, json.dumps(line).encode() + b"\n")
    assert response.status == 400 and response.json().get("accepted") == 0, response.describe()


@pytest.fixture(scope="module")
def dashboard_run(tmp_path_factory, sextant_bin):
    if not PROMETHEUS_BIN.exists():
        _skip_or_fail(f"{PROMETHEUS_BIN} not installed (apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("dashboards")
    sextant = Sextant("dashboards", workdir / "sextant", sextant_bin, extra_args=("--pairing-grace", str(PAIRING_GRACE_S)))
    prometheus = None
    try:
        sextant.start()
        (port,) = free_ports(1)
        (workdir / "prometheus").mkdir()
        config_path = workdir / "prometheus" / "prometheus.yml"
        config_path.write_text(json.dumps(_prometheus_config(sextant), indent=1) + "\n")  # JSON is YAML
        log_path = workdir / "prometheus" / "prometheus.log"
        started_at = time.time()
        prometheus = spawn([str(PROMETHEUS_BIN), f"--config.file={config_path}",
                            f"--storage.tsdb.path={workdir / 'prometheus' / 'tsdb'}",
                            f"--web.listen-address=127.0.0.1:{port}"], log_path)
        _wait_for_first_scrapes(port, prometheus, log_path)
        with Mesh(specs=DASHBOARD_MESH, workdir=workdir / "mesh") as mesh:
            files = {name: w.access_log for name, w in mesh.workloads.items()}
            with LogTailer(sextant, files, mesh.node_ids()) as tailer:
                traffic = mesh.drive(DASHBOARD_REQUESTS, concurrency=DRIVER_CONCURRENCY)
                # The last complete minute (the 1m window) must hold enough traffic of every edge.
                while traffic.finished_at % 60 < LAST_MINUTE_TRAFFIC_S:
                    traffic = _merge_traffic(traffic, mesh.drive(TOP_UP_REQUESTS, concurrency=DRIVER_CONCURRENCY))
                counts = mesh.counts()
                truth_http = mesh.ground_truth_by_code(traffic, counts)
                truth_tcp = mesh.tcp_ground_truth(counts)
                mesh.wait_for_access_logs(mesh.counts())
                tailer.post_new_lines()
            assert not tailer.problems, "access-log lines not accepted whole:\n" + "\n".join(tailer.problems)
            assert tailer.posted_lines == mesh.expected_access_log_lines(counts), tailer.posted_lines
            workloads = {name: w.service for name, w in mesh.workloads.items()}
            durations = {
                "destination": _durations(files[SLOW_WORKLOAD]),
                "source": _durations(files["productpage-v1"], f"outbound|9080||{service_fqdn('details')}"),
            }
            node_id = mesh.node_ids()[SLOW_WORKLOAD]
        _provoke_rejections(sextant, node_id)
        # Sextant's quantiles of a minute are there once it is over and its calls are stored.
        complete_at = max(time.time(), (math.floor(traffic.finished_at / 60) + 1) * 60)
        run = DashboardRun(prometheus_port=port, started_at=started_at, evaluated_at=0.0, truth_http=truth_http,
                           truth_tcp=truth_tcp, workloads=workloads, durations_ms=durations, sextant=sextant,
                           prometheus_log=log_path)
        _wait_for_prometheus(run, prometheus, complete_at)
        yield run
    finally:
        if prometheus is not None:
            stop_processes([prometheus], grace_s=10)
        sextant.stop()


def _wait_for_first_scrapes(port: int, prometheus, log_path: Path) -> None:
    """Until Prometheus has scraped both jobs once, so that its series of Sextant's counters begin
    before any data."""
    query = urllib.parse.urlencode({"query": "count(up == 1)"})
    deadline = time.monotonic() + PROMETHEUS_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        assert prometheus.poll() is None, f"prometheus exited with {prometheus.returncode}:\n{log_path.read_text()[-3000:]}"
        try:
            status, body = http_get(f"http://127.0.0.1:{port}/api/v1/query?{query}", timeout=5)
            last = json.loads(body)["data"]["result"] if status == 200 else body[:300]
        except (OSError, ValueError, KeyError) as err:
            last = repr(err)
        if isinstance(last, list) and last and last[0]["value"][1] == "2":
            return
        time.sleep(0.2)
    pytest.fail(f"Prometheus has not scraped both jobs after {PROMETHEUS_TIMEOUT_S:.0f} s: {last}\n"
                f"{log_path.read_text(errors='replace')[-2000:]}", pytrace=False)


def _wait_for_prometheus(run: DashboardRun, prometheus, complete_at: float) -> None:
    """Until Prometheus has every request counted, and both windows of the exact quantiles as scraped
    after ``complete_at``; sets ``run.evaluated_at``."""
    expected = {"destination": sum(n for edge in run.truth_http.values() for n in edge.values()),
                "source": sum(n for (src, _), edge in run.truth_http.items() if src != UNKNOWN for n in edge.values())}
    deadline = max(time.time(), complete_at) + PROMETHEUS_TIMEOUT_S
    gauge = f'{QUANTILE_GAUGE}{{destination_workload="{SLOW_WORKLOAD}", reporter="destination", percentile="99"}}'
    last = None
    while True:
        assert prometheus.poll() is None, (f"prometheus exited with {prometheus.returncode}:\n"
                                           f"{run.prometheus_log.read_text(errors='replace')[-3000:]}")
        now = time.time()
        run.evaluated_at = now
        try:
            totals = {s["metric"].get("reporter"): float(s["value"][1]) for s in
                      run.query("sum by (reporter) (istio_requests_total)")["result"]}
            windows = {s["metric"].get("window") for s in run.query(f"timestamp({gauge})")["result"]
                       if float(s["value"][1]) >= complete_at}
            last = (totals, windows)
        except (AssertionError, OSError) as err:
            last = repr(err)
        if last == (expected, {"1m", "5m"}):
            run.evaluated_at = now
            return
        if now >= deadline:
            pytest.fail(f"Prometheus {now - complete_at:.0f} s after the data was complete: (requests by "
                        f"reporter, windows of {SLOW_WORKLOAD}'s exact p99 scraped since) = {last}, expected "
                        f"({expected}, 1m and 5m)\n{run.sextant.report()}\nprometheus log (tail):\n"
                        f"{run.prometheus_log.read_text(errors='replace')[-2000:]}", pytrace=False)
        time.sleep(0.5)


# --------------------------------------------------------------------------
# What the run must show: the series the apps' own counts imply

SELECTOR = re.compile(r"\b((?:istio|sextant)_[a-z_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
# Labels of the exact quantiles and histograms that the apps' counts say nothing about.
FREE_LABELS = {"le", "window", "percentile"}
TCP_VALUES = {"istio_tcp_connections_opened_total": "connections", "istio_tcp_connections_closed_total": "connections",
              "istio_tcp_received_bytes_total": "requestBytes", "istio_tcp_sent_bytes_total": "responseBytes"}


def _peer_labels(prefix: str, workload: str, service: str | None) -> dict[str, str]:
    if workload == UNKNOWN:
        return {f"{prefix}_workload": UNKNOWN, f"{prefix}_workload_namespace": UNKNOWN,
                f"{prefix}_canonical_service": UNKNOWN, f"{prefix}_app": UNKNOWN}
    return {f"{prefix}_workload": workload, f"{prefix}_workload_namespace": "default",
            f"{prefix}_canonical_service": service, f"{prefix}_app": service}


def truth_series(run: DashboardRun) -> list[tuple[str, dict[str, str], dict[str, float]]]:
    """(family "http" or "tcp", labels, {metric: value}) of every Istio series the run must have."""
    series = []

    def labels(source: str, destination: str, reporter: str) -> dict[str, str]:
        service = run.workloads[destination]
        result = {"reporter": reporter, **_peer_labels("source", source, run.workloads.get(source)),
                  **_peer_labels("destination", destination, service),
                  "destination_service": service_fqdn(service), "destination_service_name": service,
                  "destination_service_namespace": "default"}
        return result

    for (source, destination), codes in run.truth_http.items():
        for reporter in ("destination",) if source == UNKNOWN else ("destination", "source"):
            for code, count in codes.items():
                series.append(("http", {**labels(source, destination, reporter), "request_protocol": "http",
                                        "response_code": str(code)}, {"istio_requests_total": float(count)}))
    for (source, destination), tcp in run.truth_tcp.items():
        for reporter in ("destination", "source"):
            series.append(("tcp", {**labels(source, destination, reporter), "request_protocol": "tcp"},
                           {metric: float(tcp[field]) for metric, field in TCP_VALUES.items()}))
    return series


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    return [(m.group(1), MATCHER.findall(m.group(2))) for m in SELECTOR.finditer(expr)]


def family(metric: str) -> str:
    if metric.startswith("istio_tcp_"):
        return "tcp"
    if metric.startswith("istio_") or metric == QUANTILE_GAUGE:
        return "http"
    return "self"


def matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        if name in FREE_LABELS:
            continue
        have = labels.get(name, "")
        if op == "=" and have != value or op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have) or op == "!~" and re.fullmatch(value, have):
            return False
    return True


def applies(expr: str, series: list) -> bool:
    """Whether the run has a series for every Istio selector of ``expr`` (Sextant's own always exist)."""
    for metric, matchers in selectors(expr):
        kind = family(metric)
        if kind != "self" and not any(k == kind and matches(labels, matchers) for k, labels, _ in series):
            return False
    return True


# --------------------------------------------------------------------------
# Variables as Grafana resolves them, against the run's Prometheus


def variable_dependencies(dashboard: dict) -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for name, variable in variables(dashboard).items():
        direct = set(referenced_variables(variable_query(variable))) - BUILTIN_VARIABLES
        deps[name] = direct.union(*(deps.get(d, set()) for d in direct))
    return deps


def used_variables(dashboard: dict, expr: str) -> list[str]:
    deps = variable_dependencies(dashboard)
    direct = set(referenced_variables(expr)) - BUILTIN_VARIABLES
    used = direct.union(*(deps[d] for d in direct))
    return [name for name in variables(dashboard) if name in used]


def variable_values(run: DashboardRun, variable: dict, assigned: dict[str, str], cache: dict) -> list[str]:
    if variable["type"] == "custom":
        return custom_options(variable)
    match = LABEL_VALUES.match(variable_query(variable))
    selector = substitute(match.group(1), assigned) if match.group(1) else None
    key = (match.group(2), selector)
    if key not in cache:
        cache[key] = run.label_values(match.group(2), selector)
    values = list(cache[key])
    if variable.get("includeAll"):
        values.append(variable.get("allValue") or ".*")
    return values


def assignments(run: DashboardRun, dashboard: dict, names: list[str], cache: dict) -> list[dict[str, str]]:
    """Every combination of values of the variables ``names`` (in dashboard order, chained)."""
    result: list[dict[str, str]] = [{}]
    listed = variables(dashboard)
    for name in names:
        result = [{**a, name: value} for a in result for value in variable_values(run, listed[name], a, cache)]
    return result


def evaluate(run: DashboardRun, expr: str, assigned: dict[str, str]) -> tuple[str, list[dict]]:
    promql = substitute(expr, {**assigned, "__rate_interval": run.rate_range})
    data = run.query(promql)
    if data["resultType"] == "scalar":
        return promql, [{"metric": {}, "value": data["result"]}]
    return promql, data["result"]


# --------------------------------------------------------------------------
# Dynamic checks


def test_variables_list_what_the_run_has(dashboard_run):
    """Each variable's label_values(...) query lists exactly the run's namespaces, services, workloads,
    reporters and the one Sextant."""
    run = dashboard_run
    cache: dict = {}
    expected = {
        "namespace": [["default"]],
        "service": [sorted(service_fqdn(s) for s in set(run.workloads.values()))],
        "workload": [sorted(run.workloads)],
        "qrep": [["destination", "source"]],
        "instance": [[f"127.0.0.1:{run.sextant.http_port}"]],
        "window": [["1m", "5m"]],
    }
    problems = []
    for name, dashboard in load_dashboards().items():
        for variable in variables(dashboard).values():
            if variable["type"] == "datasource":
                continue
            deps = used_variables(dashboard, variable_query(variable))
            for assigned in assignments(run, dashboard, deps, cache):
                values = variable_values(run, variable, assigned, cache)
                concrete = sorted(v for v in values if v != variable.get("allValue"))
                if concrete not in expected[variable["name"]]:
                    problems.append(f"{name} ${variable['name']} with {assigned}: {concrete}, expected one of "
                                    f"{expected[variable['name']]}")
    assert not problems, "\n".join(problems)


def test_every_panel_answers(dashboard_run):
    """Every target of every panel, for every value of its variables: finite data where the run has the
    series it selects (an HTTP panel for HTTP services, a TCP panel for TCP ones, a reporter that saw
    the calls), nothing (or zero) where it has not."""
    run = dashboard_run
    series = truth_series(run)
    cache: dict = {}
    problems = []
    checked = with_data = 0
    for name, dashboard in load_dashboards().items():
        for panel, t in targets(dashboard):
            for assigned in assignments(run, dashboard, used_variables(dashboard, t["expr"]), cache):
                promql, result = evaluate(run, t["expr"], assigned)
                values = [float(sample["value"][1]) for sample in result]
                where = f"{name} panel {panel['id']} {panel['title']!r} {t['refId']} {assigned}"
                checked += 1
                if applies(promql, series):
                    with_data += 1
                    if not values or not all(math.isfinite(v) for v in values):
                        problems.append(f"{where}: expected finite data, got {result[:5]}\n    {promql}")
                elif any(v != 0 for v in values):
                    problems.append(f"{where}: the run has no such series, yet {result[:5]}\n    {promql}")
    print(f"\n{checked} queries checked, {with_data} with data, $__rate_interval = {run.rate_range}")
    assert with_data > 500, (checked, with_data)
    assert not problems, f"{len(problems)} of {checked} queries wrong:\n" + "\n".join(problems[:40])


COUNTED = re.compile(r"^sum(?: by \((?P<by>[^)]*)\) )?\((?P<metric>istio_\w+)\{(?P<selector>[^}]*)\}\)"
                     r"(?: or on\(\) vector\(0\))?$")


def expected_sums(series: list, metric: str, matchers: list, by: list[str]) -> dict[tuple, float]:
    sums: dict[tuple, float] = {}
    for _, labels, values in series:
        if metric in values and matches(labels, matchers):
            key = tuple(labels.get(label, "") for label in by)
            sums[key] = sums.get(key, 0.0) + values[metric]
    return sums


def test_counted_totals_equal_the_apps_counts(dashboard_run):
    """Every panel that sums a raw Istio counter ("Requests Counted", "5xx Counted", the tables' counted
    columns, ...), for every value of its variables, equals the sum of what the apps counted."""
    run = dashboard_run
    series = truth_series(run)
    cache: dict = {}
    problems = []
    checked = 0
    for name, dashboard in load_dashboards().items():
        for panel, t in targets(dashboard):
            if not COUNTED.match(t["expr"]):
                continue
            for assigned in assignments(run, dashboard, used_variables(dashboard, t["expr"]), cache):
                promql, result = evaluate(run, t["expr"], assigned)
                match = COUNTED.match(promql)
                by = [label.strip() for label in (match.group("by") or "").split(",") if label.strip()]
                expected = expected_sums(series, match.group("metric"), MATCHER.findall(match.group("selector")), by)
                actual = {tuple(s["metric"].get(label, "") for label in by): float(s["value"][1]) for s in result}
                checked += 1
                if {k: v for k, v in actual.items() if v} != {k: v for k, v in expected.items() if v}:
                    problems.append(f"{name} panel {panel['id']} {panel['title']!r} {t['refId']} {assigned}:\n"
                                    f"    Prometheus {actual}\n    apps       {expected}\n    {promql}")
    assert checked > 100, checked
    assert not problems, f"{len(problems)} of {checked} counted totals differ:\n" + "\n".join(problems[:20])


def exact_quantile(values: list[int], q: float) -> tuple[float, float]:
    """The range of values a quantile q of ``values`` may have: between the order statistics of rank
    floor(q(n-1)) and ceil(q(n-1)), and the nearest rank ceil(qn)."""
    ordered = sorted(values)
    n = len(ordered)
    candidates = [ordered[math.floor(q * (n - 1))], ordered[math.ceil(q * (n - 1))], ordered[math.ceil(q * n) - 1]]
    return float(min(candidates)), float(max(candidates))


def relative_error(value: float, exact: tuple[float, float]) -> float:
    low, high = exact
    if low <= value <= high:
        return 0.0
    return (low - value) / low if value < low else (value - high) / high


def test_exact_quantiles_beside_interpolated(dashboard_run):
    """On the workload dashboard, details-v1's exact p50/p90/p99 (window 5m) are within 1 % of the
    quantiles of the durations its sidecar logged; the interpolated p99 is not."""
    run = dashboard_run
    dashboard = load_dashboards()["workload.json"]
    (panel,) = [p for p in query_panels(dashboard) if p["title"] == "Request Duration: Interpolated And Exact"]
    figures = []
    problems = []
    for reporter, durations in run.durations_ms.items():
        assert len(durations) >= 200, f"{reporter}: only {len(durations)} calls to {SLOW_WORKLOAD}"
        assigned = {"namespace": "default", "workload": SLOW_WORKLOAD, "qrep": reporter, "window": "5m"}
        shown = {}
        for t in panel["targets"]:
            _, result = evaluate(run, t["expr"], assigned)
            assert len(result) == 1, f"{t['expr']} with {assigned}: {result}"
            shown[substitute(t["legendFormat"], {})] = float(result[0]["value"][1])
        for q, name in QUANTILES_SHOWN:
            exact = exact_quantile(durations, q)
            gauge, interpolated = shown[f"{name} exact"], shown[f"{name} interpolated"]
            gauge_error, interpolated_error = relative_error(gauge, exact), relative_error(interpolated, exact)
            figures.append(f"{reporter:>11} {name}: exact {exact[0]:g}-{exact[1]:g} ms, Sextant {gauge:.2f} ms "
                           f"({gauge_error:.2%} off), histogram_quantile {interpolated:.2f} ms "
                           f"({interpolated_error:.1%} off)")
            if gauge_error > QUANTILE_TOLERANCE:
                problems.append(f"{reporter} {name}: Sextant's {gauge} is {gauge_error:.2%} off {exact}")
            if name == "p99" and interpolated_error <= QUANTILE_TOLERANCE:
                problems.append(f"{reporter} p99: histogram_quantile's {interpolated} is within "
                                f"{QUANTILE_TOLERANCE:.0%} of {exact}: the run does not show the difference")
    print("\n" + "\n".join(figures))
    assert not problems, "\n".join(problems + figures)


QUANTILES_SHOWN = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"))


def _single_value(run: DashboardRun, dashboard: dict, title: str, assigned: dict[str, str]) -> list[dict]:
    (panel,) = [p for p in query_panels(dashboard) if p["title"] == title]
    return [sample for t in panel["targets"] for sample in evaluate(run, t["expr"], assigned)[1]]


def test_collector_dashboard_figures(dashboard_run):
    """The Sextant dashboard shows the provoked rejections by reason, no refusals, and the pairing
    ratio the run implies (every call between two sidecars paired; the driver's calls cannot be)."""
    run = dashboard_run
    dashboard = load_dashboards()["sextant.json"]
    assigned = {"instance": f"127.0.0.1:{run.sextant.http_port}"}
    rejected_requests = _single_value(run, dashboard, "Rejected Requests By Reason", assigned)
    assert {s["metric"].get("channel") for s in rejected_requests} == {"zipkin"}, rejected_requests
    rejected_records = _single_value(run, dashboard, "Rejected Records By Reason", assigned)
    assert {(s["metric"].get("channel"), s["metric"].get("reason")) for s in rejected_records} == {
        ("accesslog", "negative_duration")}, rejected_records
    refused = _single_value(run, dashboard, "Refused Requests By Reason", assigned)
    assert [(s["metric"], float(s["value"][1])) for s in refused] == [({"reason": "none"}, 0.0)], refused
    received = _single_value(run, dashboard, "Records Received By Channel", assigned)
    assert {s["metric"].get("channel") for s in received} >= {"accesslog"}, received
    between_sidecars = sum(n for (src, _), codes in run.truth_http.items() if src != UNKNOWN for n in codes.values())
    driver = sum(n for (src, _), codes in run.truth_http.items() if src == UNKNOWN for n in codes.values())
    expected = 2 * between_sidecars / (2 * between_sidecars + driver)
    (ratio,) = _single_value(run, dashboard, "Pairing Ratio", assigned)
    raw = {name: [float(s["value"][1]) for s in run.query(f'{name}{{instance="{assigned["instance"]}"}}')["result"]]
           for name in ("sextant_stored_calls_total", "sextant_paired_calls_total", "sextant_merged_calls_total")}
    assert abs(float(ratio["value"][1]) - expected) < 1e-6, (ratio, expected, between_sidecars, driver, raw)
