#!/usr/bin/env python3
"""The operator's page at scale: how long headless Chromium takes to show the graph of 500
services and 2,000 edges (the mesh `sextant-bench` fills its database with).

What it does:
  1. runs `sextant-bench`, keeping its filled database (its own query benchmark runs too;
     SEXTANT_BENCH_REPEATS=7 keeps that short), unless --data-dir names one filled before;
  2. starts `sextant serve` on that database (every listener on a free 127.0.0.1 port,
     retention far enough out that it deletes nothing of the bench's fixed week) and waits
     for /readyz;
  3. opens the page in headless Chromium at 1280x800 and, for the workload graph over 1h and
     over 7d ending at the bench's clock, opens it --runs times (after --warmups untimed runs),
     each time in a freshly loaded page, and reads the page's User Timing entries:
       server       the /api/v1/graph fetch as the browser saw it (its Resource Timing entry,
                    request sent to the last byte received)
       layout+draw  the answer parsed to the graph painted (measure "sextant-graph-draw": model,
                    layout, SVG elements, style, layout and paint of the frame that shows it)
       total        the page asking for the graph to the graph painted (measure "sextant-graph")
       from nav     the navigation to the graph painted (page, script and all of the above)
  4. checks the last drawn graph of each window against the API: the same node ids and edges
     (one SVG element each), and no two node boxes overlapping; it fails loudly otherwise, and
     on any console error;
  5. prints a Markdown table of medians and p90s (p90 as sextant-bench takes it: the value at
     index n*9/10 of the sorted runs) against the 1 s target, and saves a screenshot of the 7d
     graph as the page first shows it (--screenshot) and of the whole graph (Fit) beside it.

Every process it starts is stopped at the end, and its temporary folder (the database
included) removed unless --keep.

Needs selenium (the e2e venv: scripts/setup-test-env.sh) and Debian's chromium and
chromium-driver. Run it with the venv's Python, e.g. on release binaries built with
`swift build -c release --scratch-path .build-release` (the defaults):

  .venv/bin/python scripts/bench-page.py

or on others, serving the page from the source folder (no rebuild for page changes):

  .venv/bin/python scripts/bench-page.py --sextant-bin .build/release/sextant \\
      --bench-bin .build/release/sextant-bench --page-directory Sources/SextantServer/Page
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The browser and free ports as the end-to-end tests get them.
sys.path.insert(0, str(REPO_ROOT / "Tests" / "e2e"))
from browser import open_chromium  # noqa: E402
from mesh import free_ports, http_get  # noqa: E402
from sextant import free_udp_port  # noqa: E402
# SextantBench.now: the bench fills the week before this hour boundary (unix seconds).
BENCH_END = 1_795_701_600
WINDOWS = ("1h", "7d")
TARGET_MS = 1000.0
VIEWPORT = (1280, 800)
READY_TIMEOUT_S = 120.0
DRAW_TIMEOUT_S = 120.0


class BenchError(RuntimeError):
    pass


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sextant-bin", type=Path, default=REPO_ROOT / ".build-release/release/sextant",
                        help="sextant binary to serve the page and the API (default: %(default)s)")
    parser.add_argument("--bench-bin", type=Path, default=REPO_ROOT / ".build-release/release/sextant-bench",
                        help="sextant-bench binary that fills the database (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path,
                        help="a database folder sextant-bench filled before (as --keep leaves it): used as it is, "
                             "no new fill")
    parser.add_argument("--page-directory", type=Path,
                        help="serve the page from this folder instead of the copy built into the binary "
                             "(sextant serve --page-directory), for working on the page")
    parser.add_argument("--runs", type=int, default=7, help="timed page loads per window (default: %(default)s)")
    parser.add_argument("--warmups", type=int, default=1,
                        help="untimed page loads per window before them (default: %(default)s)")
    parser.add_argument("--screenshot", type=Path,
                        default=Path(tempfile.gettempdir()) / "sextant-bench-page.png",
                        help="PNG of the 7d graph as the page opens it; the whole graph (Fit) goes beside it "
                             "as <name>-fit.png (default: %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (database, server logs) and print where it is")
    parser.add_argument("--chromium", type=Path, default=Path(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")),
                        help="Chromium binary (default: $CHROMIUM_BIN or %(default)s)")
    parser.add_argument("--chromedriver", type=Path,
                        default=Path(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")),
                        help="chromedriver binary (default: $CHROMEDRIVER_BIN or %(default)s)")
    args = parser.parse_args()
    if args.runs < 1 or args.warmups < 0:
        parser.error("--runs must be at least 1 and --warmups at least 0")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Processes


def stop(proc: subprocess.Popen | None, grace_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL once grace_s has passed."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def fill_database(bench_bin: Path, workdir: Path) -> Path:
    """Runs sextant-bench with its database kept in workdir; returns the database folder."""
    out_path = workdir / "sextant-bench.out"
    env = dict(os.environ, TMPDIR=str(workdir), SEXTANT_BENCH_KEEP="1",
               SEXTANT_BENCH_REPEATS=os.environ.get("SEXTANT_BENCH_REPEATS", "7"))
    env.pop("SEXTANT_BENCH_DB", None)  # set, it would query that folder instead of filling one
    env.pop("SEXTANT_BENCH", None)
    log(f"filling a database with {bench_bin} (500 services, 2,000 edges; then its query benchmark) ...")
    started = time.monotonic()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([str(bench_bin)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=workdir)
        try:
            code = proc.wait()
        finally:
            stop(proc)
    text = out_path.read_text(errors="replace")
    if code != 0:
        raise BenchError(f"{bench_bin} exited with {code}:\n{text[-3000:]}")
    kept = re.findall(r"^kept (.+)$", text, re.MULTILINE)
    if not kept or not (Path(kept[-1]) / "sextant.db").exists():
        raise BenchError(f"{bench_bin} did not say where it kept its database:\n{text[-3000:]}")
    log(f"  done in {time.monotonic() - started:.0f} s; its own query benchmark:")
    for line in text.splitlines():
        if line.startswith("| graph + signals"):
            log(f"  {line}")
    return Path(kept[-1])


class Server:
    """One `sextant serve` on the bench's database."""

    def __init__(self, binary: Path, data_dir: Path, workdir: Path, page_directory: Path | None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = workdir / "sextant-serve.log"
        self.page_directory = page_directory
        self.proc: subprocess.Popen | None = None
        self.base_url = ""

    def start(self) -> None:
        http, zipkin, grpc, otlp_http = free_ports(4)
        argv = [
            str(self.binary), "serve",
            "--data-dir", str(self.data_dir),
            "--listen", "127.0.0.1",
            "--http-port", str(http), "--zipkin-port", str(zipkin), "--grpc-port", str(grpc),
            "--otlp-http-port", str(otlp_http), "--statsd-port", str(free_udp_port()),
            # The bench's week ends at a fixed hour that may be days ago: keep all of it.
            "--retention-minute", "3650d", "--retention-hour", "3650d",
        ]
        if self.page_directory is not None:
            argv += ["--page-directory", str(self.page_directory)]
        self.base_url = f"http://127.0.0.1:{http}"
        log(f"starting {self.binary} serve on {self.base_url} ...")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"sextant serve exited with {self.proc.returncode}: {' '.join(argv)}\n{self.tail()}")
            try:
                if http_get(f"{self.base_url}/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"sextant serve not ready after {READY_TIMEOUT_S:.0f} s\n{self.tail()}")
            time.sleep(0.2)

    def graph(self, window: str) -> dict:
        query = urllib.parse.urlencode({"graphType": "workload", "window": window, "end": BENCH_END})
        status, body = http_get(f"{self.base_url}/api/v1/graph?{query}", timeout=60.0)
        if status != 200:
            raise BenchError(f"/api/v1/graph?{query} answered {status}: {body[:500]!r}")
        return json.loads(body)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        stop(self.proc)


# --------------------------------------------------------------------------
# The browser


def start_browser(chromium: Path, chromedriver: Path):
    for binary, package in ((chromium, "chromium"), (chromedriver, "chromium-driver")):
        if not binary.exists():
            raise BenchError(f"{binary} not found (apt-get install {package})")
    try:
        return open_chromium(VIEWPORT, DRAW_TIMEOUT_S, chromium, chromedriver)
    except ImportError:
        raise BenchError("selenium is missing: run this with the e2e venv's Python (scripts/setup-test-env.sh)") from None


# Resolves once the page marked a graph as drawn, or its error banner shows, or it has no graph
# view or shows a graph without marking it (a binary's built-in page older than the page's User
# Timing marks: --page-directory serves the current one).
WAIT_DRAWN = """
const done = arguments[arguments.length - 1];
const older = 'a page older than its "sextant-graph-drawn" mark (pass --page-directory)';
let shown = null;
const poll = () => {
  const banner = document.getElementById('banner');
  const status = document.getElementById('status');
  if (performance.getEntriesByName('sextant-graph-drawn').length) return done('drawn');
  if (banner && !banner.hidden) return done('error: ' + banner.textContent);
  if (document.readyState === 'complete' && !document.getElementById('graph-viewport')) {
    return done('no graph view in the page: ' + older);
  }
  if (status && / edges /.test(status.textContent)) shown = shown || performance.now();
  if (shown && performance.now() - shown > 5000) return done('a graph shown but not marked: ' + older);
  setTimeout(poll, 20);
};
poll();
"""

READ_TIMINGS = """
const one = (name) => {
  const list = performance.getEntriesByName(name);
  return list.length ? list[list.length - 1] : null;
};
const total = one('sextant-graph');
const draw = one('sextant-graph-draw');
const drawn = one('sextant-graph-drawn');
const fetches = performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/v1/graph?'));
const f = fetches.length ? fetches[fetches.length - 1] : null;
return {
  total: total && total.duration, draw: draw && draw.duration, fromNav: drawn && drawn.startTime,
  server: f && f.responseEnd - f.startTime, fetches: fetches.length,
  counts: drawn && drawn.detail,
};
"""

# The drawn graph in SVG user units: node boxes from each node's translate() and box size.
READ_DRAWN = """
const nodes = [...document.querySelectorAll('#graph-viewport g.node')].map((g) => {
  const m = /translate\\(([-\\d.e]+),\\s*([-\\d.e]+)\\)/.exec(g.getAttribute('transform') || '');
  const box = g.querySelector('.node-box');
  const x = m ? Number(m[1]) : NaN;
  const y = m ? Number(m[2]) : NaN;
  return {id: g.dataset.id, box: [x, y, x + Number(box.getAttribute('width')), y + Number(box.getAttribute('height'))]};
});
const edges = [...document.querySelectorAll('#graph-viewport g.edge')].map((g) =>
  [g.dataset.source, g.dataset.target, g.dataset.protocol]);
return {nodes, edges, status: document.getElementById('status').textContent};
"""


def page_url(base_url: str, window: str) -> str:
    return f"{base_url}/#/graph?type=workload&window={window}&end={BENCH_END}"


def load_once(browser, url: str) -> dict:
    """Opens the page afresh at url, waits for the graph to be drawn, returns the page's timings."""
    from selenium.common.exceptions import TimeoutException

    browser.get("about:blank")
    browser.get(url)
    try:
        state = browser.execute_async_script(WAIT_DRAWN)
    except TimeoutException:
        state = f"nothing drawn after {DRAW_TIMEOUT_S:.0f} s"
    if state != "drawn":
        raise BenchError(f"the page did not draw the graph at {url}: {state}")
    timings = browser.execute_script(READ_TIMINGS)
    if timings["fetches"] != 1 or timings["server"] is None or timings["total"] is None:
        raise BenchError(f"unexpected timing entries at {url}: {timings}")
    return timings


def check_console(browser) -> None:
    severe = [e["message"] for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    if severe:
        raise BenchError("console errors:\n" + "\n".join(severe))


def check_drawn(browser, api: dict, window: str) -> None:
    """The drawn graph equals the API's (node ids, edges) and no two node boxes overlap."""
    drawn = browser.execute_script(READ_DRAWN)
    api_nodes = sorted(n["id"] for n in api["nodes"])
    api_edges = sorted((e["source"], e["target"], e["protocol"]) for e in api["edges"])
    nodes = sorted(n["id"] for n in drawn["nodes"])
    edges = sorted(tuple(e) for e in drawn["edges"])
    if (len(nodes), len(edges)) != (len(api_nodes), len(api_edges)):
        raise BenchError(f"{window}: drawn {len(nodes)} nodes and {len(edges)} edges, the API has "
                         f"{len(api_nodes)} and {len(api_edges)} (status: {drawn['status']!r})")
    if nodes != api_nodes:
        raise BenchError(f"{window}: drawn nodes differ from the API's: {sorted(set(nodes) ^ set(api_nodes))[:20]}")
    if edges != api_edges:
        raise BenchError(f"{window}: drawn edges differ from the API's: {sorted(set(edges) ^ set(api_edges))[:20]}")
    boxes = sorted(((n["box"], n["id"]) for n in drawn["nodes"]), key=lambda b: b[0][0])
    bad = [i for b, i in boxes if not all(v == v for v in b)]  # NaN: no position read
    if bad:
        raise BenchError(f"{window}: nodes without a position: {bad[:20]}")
    overlaps = []
    # Sweep along x: only boxes whose x ranges meet are compared.
    for i, (a, ida) in enumerate(boxes):
        for b, idb in boxes[i + 1:]:
            if b[0] >= a[2] - 0.5:
                break
            if min(a[3], b[3]) - max(a[1], b[1]) > 0.5:
                overlaps.append((ida, idb))
    if overlaps:
        raise BenchError(f"{window}: {len(overlaps)} overlapping node boxes, e.g. {overlaps[:10]}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def bench_window(browser, server: Server, window: str, runs: int, warmups: int) -> dict:
    api = server.graph(window)
    if not api["nodes"]:
        raise BenchError(f"/api/v1/graph over {window} ending {BENCH_END} is empty: has sextant-bench's clock "
                         f"(SextantBench.now) changed?")
    url = page_url(server.base_url, window)
    log(f"{window}: the API has {len(api['nodes'])} nodes and {len(api['edges'])} edges; "
        f"{warmups} + {runs} page loads of {url}")
    samples = []
    for i in range(warmups + runs):
        t = load_once(browser, url)
        if t["counts"] != {"nodes": len(api["nodes"]), "edges": len(api["edges"])}:
            raise BenchError(f"{window}: the page drew {t['counts']}, the API has {len(api['nodes'])} nodes and "
                             f"{len(api['edges'])} edges")
        if i >= warmups:
            samples.append(t)
            log(f"  run {i - warmups + 1}: server {t['server']:.0f} ms, layout+draw {t['draw']:.0f} ms, "
                f"total {t['total']:.0f} ms, from navigation {t['fromNav']:.0f} ms")
    check_drawn(browser, api, window)
    check_console(browser)
    col = lambda key: [s[key] for s in samples]  # noqa: E731
    return {
        "window": window, "nodes": len(api["nodes"]), "edges": len(api["edges"]),
        "server": percentile(col("server"), 0.5),
        "draw": (percentile(col("draw"), 0.5), percentile(col("draw"), 0.9)),
        "total": (percentile(col("total"), 0.5), percentile(col("total"), 0.9)),
        "nav": percentile(col("fromNav"), 0.5),
    }


def screenshots(browser, path: Path) -> list[Path]:
    """The graph as the page opened it, then the whole graph (the Fit button)."""
    from selenium.webdriver.common.by import By

    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))
    browser.find_element(By.ID, "zoom-fit").click()
    time.sleep(0.5)
    whole = path.with_name(f"{path.stem}-fit{path.suffix}")
    browser.save_screenshot(str(whole))
    return [path, whole]


def table(rows: list[dict]) -> str:
    lines = [
        f"| window | nodes | edges | server ms (median) | layout+draw ms (median / p90) | total ms (median / p90) "
        f"| from navigation ms (median) | target (total) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        met = "met" if r["total"][1] < TARGET_MS else "MISSED"
        lines.append(f"| {r['window']} | {r['nodes']} | {r['edges']} | {r['server']:.0f} "
                     f"| {r['draw'][0]:.0f} / {r['draw'][1]:.0f} | {r['total'][0]:.0f} / {r['total'][1]:.0f} "
                     f"| {r['nav']:.0f} | < {TARGET_MS:.0f} ms: {met} |")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    for name, binary in (("--sextant-bin", args.sextant_bin), ("--bench-bin", args.bench_bin)):
        if name == "--bench-bin" and args.data_dir is not None:
            continue
        if not binary.is_file():
            raise BenchError(f"{name} {binary} not found: build it (swift build -c release --scratch-path .build-release) or pass {name}")
    if args.page_directory is not None and not (args.page_directory / "index.html").is_file():
        raise BenchError(f"--page-directory {args.page_directory} holds no index.html")
    if args.data_dir is not None and not (args.data_dir / "sextant.db").is_file():
        raise BenchError(f"--data-dir {args.data_dir} holds no sextant.db")

    workdir = Path(tempfile.mkdtemp(prefix="sextant-bench-page-"))
    server = None
    browser = None
    try:
        data_dir = args.data_dir.resolve() if args.data_dir else fill_database(args.bench_bin.resolve(), workdir)
        server = Server(args.sextant_bin.resolve(), data_dir, workdir,
                        args.page_directory.resolve() if args.page_directory else None)
        server.start()
        browser = start_browser(args.chromium, args.chromedriver)
        rows = [bench_window(browser, server, window, args.runs, args.warmups) for window in WINDOWS]
        shots = screenshots(browser, args.screenshot.resolve())
        check_console(browser)
        version = browser.capabilities.get("browserVersion", "?")
        print(f"\nsextant-bench's mesh in headless Chromium {version} at {VIEWPORT[0]}x{VIEWPORT[1]}, workload graph; "
              f"{args.sextant_bin} serving {'--page-directory ' + str(args.page_directory) if args.page_directory else 'its built-in page'}; "
              f"{args.runs} fresh page loads per window after {args.warmups} untimed\n")
        print(table(rows))
        print()
        for shot in shots:
            print(f"screenshot: {shot}")
        return 0
    finally:
        if browser is not None:
            browser.quit()
        if server is not None:
            server.stop()
        if args.keep:
            log(f"kept {workdir}" + (f" (database: {server.data_dir})" if server else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        log(f"bench-page: {err}")
        sys.exit(1)
