"""HTTP serving under load: `mlops serve` in one process, wrk driving it from another.

python benchmarks/serve.py [--workers 2] [--connections 1,32] [--duration 15] [--rebuild]

Builds a home with `mlops quickstart` once (then reused), refreshes every job's features with
`mlops ingest all`, starts `mlops serve` and waits for /readyz to report the champions loaded.
Then, for each number of concurrent connections, wrk drives /healthz (the bare-framework
ceiling), the dossier, the order composer, the ETA endpoint and the generic predict route
(churn), each request for a random customer (of 2,000) or zone; before each endpoint's run
every customer of the sample (for ETA every zone, distance and item count of the load) is
asked for once, as a server in steady state has served them recently (--cold: not).
Reported per run: requests/s, p50/p90/p99/max latency, errors, CPU time per request of the
server and of wrk (which shares the cores), the share of heuristic fallbacks (from /metrics
deltas, with their reasons), the share answered from memory (no read, no model call, no
thread hop) and the requests/s relative to /healthz at the same concurrency. The targets are
checked (PASS/FAIL, never an exit code) and everything goes to
benchmarks/results/serve-w<workers>-<isolation>.json; the server log goes next to it.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from common import (
    RESULTS,
    http_get,
    mlops,
    prepare_home,
    request_inputs,
    served_env,
    server_log_problems,
    serving,
)

# predict: the generic route (POST /v1/jobs/churn/predict), the churn model for a customer.
ENDPOINTS = ("healthz", "dossier", "compose", "eta", "predict")
ENDPOINT_JOBS = {
    "dossier": ("churn", "upsell"),
    "compose": ("upsell",),
    "eta": ("eta",),
    "predict": ("churn",),
}
ANSWER = re.compile(r"^mlops_answers_total\{([^}]*)\}\s+(\S+)", re.M)
FROM_MEMORY = re.compile(r'^mlops_answers_from_memory_total\{endpoint="(\w+)"\}\s+(\S+)', re.M)
DROPPED = re.compile(r"^mlops_prediction_log_dropped_total\s+(\S+)", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')

LUA = """
-- Requests are formatted once per thread (POOL of them, cycled): formatting in request()
-- costs wrk CPU per request that /healthz's runs do not pay, on the cores the server uses.
local POOL = 4096
local n = 0
function setup(thread) n = n + 1; thread:set("seed", n) end
local pool, at = {}, 0
local function pick(t) return t[math.random(#t)] end
local json = {["Content-Type"] = "application/json"}
local function make()
  if kind == "dossier" then
    return wrk.format("GET", "/v1/customers/" .. pick(ids) .. "/dossier")
  elseif kind == "compose" then
    return wrk.format("POST", "/v1/orders/compose", json, string.format(
      '{"customer_id":"%s","cart":[{"category":"%s","quantity":%d,"unit_price":%.2f}],'
      .. '"limit":3}', pick(ids), pick(cats), math.random(1, 4), math.random(100, 2000) / 100))
  elseif kind == "predict" then
    return wrk.format("POST", "/v1/jobs/churn/predict", json,
      string.format('{"entity_id":"%s"}', pick(ids)))
  end
  return wrk.format("POST", "/v1/deliveries/eta", json, string.format(
    '{"zone":"%s","distance_km":%.1f,"item_count":%d}',
    pick(zones), math.random(1, 120) / 10, math.random(1, 8)))
end
function init(args)
  math.randomseed(os.time() * 7919 + (seed or 0))
  if kind ~= "healthz" then
    for i = 1, POOL do pool[i] = make() end
  end
end
if kind ~= "healthz" then
  function request()
    at = at % POOL + 1
    return pool[at]
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def lua_list(values) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def answers(base: str) -> collections.Counter:
    """mlops_answers_total by (endpoint, job, source, reason), and answers from memory by
    ("memory", endpoint), aggregated over the workers."""
    counts: collections.Counter = collections.Counter()
    text = http_get(f"{base}/metrics")
    for labels, value in ANSWER.findall(text):
        lab = dict(LABEL.findall(labels))
        key = (lab.get("endpoint"), lab.get("job"), lab.get("source"), lab.get("reason", ""))
        counts[key] += float(value)
    for endpoint, value in FROM_MEMORY.findall(text):
        counts[("memory", endpoint)] += float(value)
    counts[("dropped",)] = sum(float(v) for v in DROPPED.findall(text))
    return counts


def fallbacks(before: collections.Counter, after: collections.Counter, endpoint: str) -> dict:
    """The run's answers, the share from the heuristic (with reasons) and the share of
    requests answered from memory (no read, no model call, no thread hop)."""
    delta = {k: after[k] - before.get(k, 0) for k in after if k[0] == endpoint and len(k) == 4}
    total = sum(delta.values())
    heuristic = sum(v for k, v in delta.items() if k[2] == "heuristic")
    reasons = {f"{k[1]}:{k[3]}": int(v) for k, v in delta.items() if k[2] == "heuristic" and v}
    requests = total / len(ENDPOINT_JOBS[endpoint])
    memory = after[("memory", endpoint)] - before.get(("memory", endpoint), 0)
    return {
        "answers": int(total),
        "fallbacks": int(heuristic),
        "share": heuristic / total if total else None,
        "reasons": reasons,
        "from_memory": memory / requests if requests else None,
        "log_dropped": int(after[("dropped",)] - before.get(("dropped",), 0)),
    }


def warm(base: str, kind: str, ids: list[str], zones: list[str], passes: int = 6) -> float:
    """Ask for every customer of the sample (for ETA every zone, distance and item count the
    load draws from), as a server in steady state has served these recently: a pass over
    four fresh keep-alive connections, each held by one worker, again until a pass is
    answered from memory in every worker (99%) or ``passes`` are done. Returns the last
    pass's share from memory."""
    from concurrent.futures import ThreadPoolExecutor

    host, port = base.removeprefix("http://").split(":")
    if kind == "eta":
        bodies = [  # the grid of the Lua script's ETA requests
            json.dumps({"zone": z, "distance_km": d / 10, "item_count": n})
            for z in zones
            for d in range(1, 121)
            for n in range(1, 9)
        ]
        calls = [("POST", "/v1/deliveries/eta", b) for b in bodies]
    elif kind == "compose":
        calls = [("POST", "/v1/orders/compose", json.dumps({"customer_id": c})) for c in ids]
    elif kind == "predict":
        calls = [("POST", "/v1/jobs/churn/predict", json.dumps({"entity_id": c})) for c in ids]
    else:
        calls = [("GET", f"/v1/customers/{c}/dossier", None) for c in ids]

    def run(share: list) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        for method, path, body in share:
            headers = {"Content-Type": "application/json"} if body else {}
            conn.request(method, path, body=body, headers=headers)
            conn.getresponse().read()
        conn.close()

    share = 0.0
    for _ in range(passes):
        before = answers(base)[("memory", kind)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(run, [calls[i::4] for i in range(4)]))
        share = (answers(base)[("memory", kind)] - before) / len(calls)
        if share >= 0.99:
            break
        random.shuffle(calls)  # other connections, other workers
    return share


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group
    ``pgid`` (the server: its supervisor and workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def drop_logged_answers(home: Path) -> None:
    """Empty the home's prediction log. Each run logs millions of answers; kept, they would
    make every /metrics scrape's operational figures (7 days of the log, re-read every 15 s)
    take seconds, which is the log's size being measured, not serving."""
    with sqlite3.connect(home / "mlops.db") as db:
        db.execute("DELETE FROM ml_prediction_log")
    with sqlite3.connect(home / "mlops.db") as db:
        db.execute("VACUUM")


def wrk(url: str, script: Path, connections: int, threads: int, seconds: int, server: int) -> dict:
    """One wrk run; with the CPU time per request of the server (process group ``server``)
    and of wrk itself, which shares the cores."""
    cmd = ["wrk", "--latency", "-s", str(script), f"-c{connections}", f"-t{threads}"]
    cmd += [f"-d{seconds}s", "--timeout", "10s", url]
    server_before = group_cpu_seconds(server)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True)
    server_cpu = group_cpu_seconds(server) - server_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    r = json.loads(line[6:])
    r["errors"] = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r.update({f"{p}_ms": r[f"{p}_us"] / 1000 for p in ("p50", "p90", "p99", "max")})
    r["server_cpu_us"] = server_cpu / max(r["requests"], 1) * 1e6
    r["wrk_cpu_us"] = wrk_cpu / max(r["requests"], 1) * 1e6
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--home", type=Path, default=Path("/tmp/mlops-bench/serve-home"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--connections", default="1,32", help="Comma-separated, e.g. 1,8,32.")
    p.add_argument("--duration", type=int, default=15, help="Seconds per wrk run.")
    p.add_argument("--warmup", type=int, default=2, help="Seconds per endpoint, discarded.")
    p.add_argument(
        "--cold",
        action="store_true",
        help="Skip the pass that asks for every customer and zone once before each run.",
    )
    p.add_argument("--threads", type=int, default=2, help="wrk threads (capped at connections).")
    p.add_argument("--port", type=int, default=0, help="Default: a free one.")
    p.add_argument("--rebuild", action="store_true", help="Run quickstart even if built.")
    p.add_argument(
        "--isolation",
        choices=("thread", "inline"),
        default="thread",
        help="MLOPS_MODEL_ISOLATION of the server (thread: model paths cut off at the budget).",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MLOPS_NAME=VALUE",
        help="A setting of the server (repeatable), e.g. MLOPS_CONTROL_POLL_SECONDS=60.",
    )
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian's package)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on a kill too
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    tag = f"serve-w{args.workers}-{args.isolation}" + ("-cold" if args.cold else "")
    log = RESULTS / f"{tag}.log"
    log.write_bytes(b"")
    env = served_env(home, MLOPS_LOG_REQUESTS="false", MLOPS_MODEL_ISOLATION=args.isolation)
    for pair in args.set:
        name, _, value = pair.partition("=")
        if not name.startswith("MLOPS_") or not value:
            sys.exit(f"--set {pair!r}: write MLOPS_NAME=VALUE")
        env[name] = value

    prepare_home(env, home, log, rebuild=args.rebuild)
    drop_logged_answers(home)
    mlops(env, "ingest", "all", log=log)
    ids, zones, cats = request_inputs(home)

    runs, tmp = [], Path(tempfile.mkdtemp(prefix="mlops-serve-bench-"))
    try:
        with serving(env, log, workers=args.workers, port=args.port) as (server, base, ready):
            scripts = {}
            for kind in ENDPOINTS:
                scripts[kind] = tmp / f"{kind}.lua"
                header = f"kind = {json.dumps(kind)}\nids = {lua_list(ids)}\n"
                header += f"zones = {lua_list(zones)}\ncats = {lua_list(cats)}\n"
                scripts[kind].write_text(header + LUA)
            url = {k: base + ("/healthz" if k == "healthz" else "/") for k in ENDPOINTS}
            if args.warmup > 0:
                for kind in ENDPOINTS:
                    wrk(url[kind], scripts[kind], 4, min(args.threads, 4), args.warmup, server.pid)
            for conns in (int(c) for c in args.connections.split(",")):
                for kind in ENDPOINTS:
                    warmed = None
                    if kind != "healthz" and not args.cold:
                        warmed = warm(base, kind, ids, zones)
                    before = answers(base) if kind != "healthz" else None
                    threads = min(args.threads, conns)
                    r = wrk(url[kind], scripts[kind], conns, threads, args.duration, server.pid)
                    r.update(connections=conns, endpoint=kind, warm_pass_from_memory=warmed)
                    if before is not None:
                        r["fallback"] = fallbacks(before, answers(base), kind)
                    runs.append(r)
                    print(f"  c={conns:<3} {kind:<8} {r['rps']:8.0f} req/s  "
                          f"p99 {r['p99_ms']:.2f} ms  CPU/request: server "
                          f"{r['server_cpu_us']:.0f} us, wrk {r['wrk_cpu_us']:.0f} us")  # fmt: skip
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()

    ceiling = {r["connections"]: r["rps"] for r in runs if r["endpoint"] == "healthz"}
    print(f"\n{'conns':>5} {'endpoint':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'fallback':>8} {'memory':>7} {'/healthz':>8}")  # fmt: skip
    pct = lambda v: "" if v is None else f"{v:.1%}"  # noqa: E731
    for r in runs:
        r["vs_healthz"] = r["rps"] / ceiling[r["connections"]] if ceiling[r["connections"]] else 0
        share, memory = (r.get("fallback", {}).get(k) for k in ("share", "from_memory"))
        print(f"{r['connections']:>5} {r['endpoint']:<8} {r['rps']:>8.0f} {r['p50_ms']:>7.2f} "
              f"{r['p99_ms']:>7.2f} {r['errors']:>6} {pct(share):>8} {pct(memory):>7} "
              f"{r['vs_healthz']:>8.2f}")  # fmt: skip
        if r.get("fallback", {}).get("reasons"):
            print(f"{'':>15}fallback reasons: {r['fallback']['reasons']}")
        if r.get("fallback", {}).get("log_dropped"):
            print(f"{'':>15}prediction log rows dropped: {r['fallback']['log_dropped']}")
    by = {(r["connections"], r["endpoint"]): r for r in runs}
    targets = []
    for kind in ENDPOINTS[1:]:
        if r := by.get((32, kind)):
            targets += [
                (f"c=32 {kind} req/s >= 40% of /healthz", r["vs_healthz"] >= 0.4),
                (f"c=32 {kind} p99 <= 30 ms", r["p99_ms"] <= 30),
                (f"c=32 {kind} zero errors", r["errors"] == 0),
            ]
    if r := by.get((1, "dossier")):
        targets.append(("c=1 dossier p99 <= 5 ms", r["p99_ms"] <= 5))
    print()
    for name, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    problems = server_log_problems(log)
    for message, count in problems.items():
        print(f"server log: {count} x {message}")
    version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    path = RESULTS / f"{tag}.json"
    payload = {
        "benchmark": "serve",
        "when": datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "wrk": version.splitlines()[0] if version else None,
        "workers": args.workers,
        "isolation": args.isolation,
        "duration_s": args.duration,
        "warmed_per_run": not args.cold,
        "threads": args.threads,
        "home": str(home),
        "readyz": ready,
        "runs": runs,
        "targets": [{"target": n, "pass": ok} for n, ok in targets],
        "server_log": str(log),
        "server_log_problems": problems,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
