"""The Grafana dashboards of ``dashboards/``: their structure, and their queries against a real Prometheus.

Static: every dashboard parses and has the structure Grafana reads (unique ids and uids, a grid
of 24 columns without overlaps, the data source by variable), every variable a query uses is
defined, rates take ``$__rate_interval``, and every expression and variable query, variables
substituted, parses (``promtool check rules``); the provisioning files and ``prometheus.yml``
parse (``promtool check config``) and agree with each other.

Dynamic: see ``test_every_panel_answers`` and the tests after it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mesh import REPO_ROOT
from test_federation import PROMTOOL_BIN, _skip_or_fail

DASHBOARDS_DIR = REPO_ROOT / "dashboards"
DASHBOARD_FILES = ("mesh.json", "service.json", "workload.json", "sextant.json")
PROMETHEUS_CONFIG = DASHBOARDS_DIR / "prometheus.yml"
DATASOURCE_FILE = DASHBOARDS_DIR / "provisioning" / "datasources" / "sextant.yaml"
PROVIDER_FILE = DASHBOARDS_DIR / "provisioning" / "dashboards" / "sextant.yaml"
QUANTILE_GAUGE = "sextant_request_duration_quantile_milliseconds"
QUANTILE_GAUGE_LABELS = ("reporter", "destination_workload", "destination_workload_namespace",
                         "destination_canonical_service", "destination_service", "destination_service_name",
                         "destination_service_namespace", "window", "quantile")
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
