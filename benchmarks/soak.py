"""Soak: `mlops serve` driven at a fixed rate for a long time while ETA ingestion runs.

python benchmarks/soak.py [--rate 100] [--minutes 10] [--time-scale 5] [--max-rss-growth 0.10]

Builds a home with `mlops quickstart` once (then reused, like serve.py), refreshes every job's
features and starts `mlops serve` (1 worker, default settings, SQLite) in its own process.

Load: open loop. Request i is due at start + i / rate whatever happened to the earlier ones, so
a slow server does not lower the offered rate, and each latency is measured from the request's
due time (no coordinated omission): time spent queued in the client counts. Requests rotate over
the dossier, the order composer and the ETA endpoint with valid inputs from the warehouse
(customer ids, zones, offer categories). Errors are non-2xx answers and transport errors
(including the --timeout). The client is a minimal HTTP/1.1 keep-alive client on asyncio
streams (--connections of them taking requests from one queue): httpx's connection pool spent
so much CPU once requests waited for a connection that the client, not the server, fell behind.

Ingestion: a separate process refreshes the ETA job's features every 5 minutes of simulated
time; --time-scale is simulated seconds per real second (default 5: one refresh every 60 s, ten
in ten minutes). The server judges freshness on the real clock, so each refresh is taken at
as_of = real now (the simulated time is reported next to it). Before each refresh the
warehouse receives the deliveries dispatched since the last one: the seeded history from 17:00
two days before the seed's end (the evening peak), replayed shifted to now, ids prefixed
"soak:". The first feed starts where the seeded deliveries end, or 5 hours back (what the ETA
windows read) if they end earlier. Delivery outcomes are copied with them; the feature views
only read those before as_of. Earlier runs' replayed rows are removed at start.

RSS: the server's resident memory (its process tree, from /proc) sampled every --rss-every
seconds. Growth = last sample / the first sample after the warm-up (--warmup, default the first
minute) - 1.

Reported per minute of due times: requests, errors, p50/p99/max latency, the share of answers
from the heuristic fallback (the `source` fields of the bodies; a dossier carries two), the RSS
at the minute's end, the server's CPU use and the refreshes started. Then totals, the RSS
growth and the ingestion runs (count, statuses, durations). JSON goes to
benchmarks/results/soak-<rate>rps-<minutes>min.json, the server's and the commands' output to
the .log next to it. Exit status 1 if any request failed, any refresh failed, or RSS grew more
than --max-rss-growth.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import random
import signal
import statistics
import sys
import time
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path

from common import (
    RESULTS,
    mlops,
    prepare_home,
    read_marker,
    request_inputs,
    served_env,
    server_log_problems,
    serving,
    set_marker,
)

ENDPOINTS = ("dossier", "compose", "eta")
SIM_STEP = timedelta(minutes=5)  # simulated time between two ETA refreshes
LOOKBACK = timedelta(hours=5)  # the longest window of the ETA view (sql/ml_eta_features.sql)
FEED_MARKER = "bench_soak_feed"  # "<shift in seconds>|<fed up to, ISO>"
REPLAY_FROM = dt_time(17, 0)
FEED_PREFIX = "soak:"
MB = 1024 * 1024


# --- Deliveries for the ETA refreshes: the seeded history replayed at real time ---


def start_feed(warehouse, now: datetime) -> int:
    """Remove earlier runs' replayed deliveries, choose the replay shift, feed up to ``now``."""
    from sqlalchemy import delete, func, select

    from mlops.examples.marketplace.warehouse import deliveries

    with warehouse.begin() as conn:
        conn.execute(delete(deliveries).where(deliveries.c.delivery_id.like(f"{FEED_PREFIX}%")))
        end = conn.execute(select(func.max(deliveries.c.dispatched_at))).scalar_one()
    if end is None:
        sys.exit("the warehouse has no deliveries to replay: rebuild the home (--rebuild)")
    # Replayed "now" is 17:00 two days before the seed's end: the afternoon and evening peak
    # (the seed's nights have a few deliveries an hour), a day of history ahead of it, all of
    # it with known outcomes.
    replayed = datetime.combine((end - timedelta(days=2)).date(), REPLAY_FROM)
    shift = int((now - replayed).total_seconds())
    set_marker(warehouse, f"{shift}|{max(end, now - LOOKBACK).isoformat()}", FEED_MARKER)
    return feed(warehouse, now)


def feed(warehouse, now: datetime) -> int:
    """Copy the deliveries dispatched since the last feed (up to ``now``, shifted) into the
    warehouse; return how many."""
    from sqlalchemy import insert, select, text

    from mlops.examples.marketplace.warehouse import deliveries as d

    shift_seconds, fed = read_marker(warehouse, FEED_MARKER).split("|")
    shift, fed = timedelta(seconds=int(shift_seconds)), datetime.fromisoformat(fed)
    with warehouse.begin() as conn:
        rows = conn.execute(
            select(d).where(
                d.c.dispatched_at > fed - shift,
                d.c.dispatched_at <= now - shift,
                d.c.delivery_id.not_like(f"{FEED_PREFIX}%"),
            )
        ).mappings()
        copies = [
            {
                **row,
                "delivery_id": f"{FEED_PREFIX}{row['delivery_id']}",
                "dispatched_at": row["dispatched_at"] + shift,
                "promised_at": row["promised_at"] + shift,
                "delivered_at": row["delivered_at"] and row["delivered_at"] + shift,
            }
            for row in rows
        ]
        if copies:
            conn.execute(insert(d), copies)
        # In the same transaction: a feed is never half done nor done twice.
        mark = f"{shift_seconds}|{now.isoformat()}"
        conn.execute(text(f"UPDATE {FEED_MARKER} SET m = :m"), {"m": mark})
    return len(copies)


def ingest_worker(args) -> None:
    """The ingestion process: feed and refresh ETA every SIM_STEP of simulated time from
    ``--t0`` until ``--until`` (epoch seconds); one JSON line per refresh on stdout."""
    from mlops.clock import SystemClock
    from mlops.runtime import Runtime
    from mlops.store import ingest

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    rt, clock = Runtime(), SystemClock()  # settings from the environment, as the server's
    interval = SIM_STEP.total_seconds() / args.time_scale
    simulated = clock.now()
    for k in range(1, 1_000_000):
        due = args.t0 + k * interval
        if due >= args.until:
            break
        time.sleep(max(0.0, due - time.time()))
        began, now = time.perf_counter(), clock.now()
        run = {
            "refresh": k,
            "simulated_time": (simulated + k * SIM_STEP).isoformat(),
            "as_of": now.isoformat(),
            "started_s": round(time.time() - args.t0, 3),
            "late_s": round(time.time() - due, 3),
        }
        try:
            run["deliveries_fed"] = feed(rt.warehouse, now)
            report = ingest.refresh(rt, "eta", as_of=now)
            run.update(
                status=report.status,
                rows_written=report.rows_written,
                rows_rejected=report.rows_rejected,
                ingest_seconds=round(report.seconds, 3),
                error=report.error,
            )
        except Exception as exc:  # reported, and the next refresh still runs
            run.update(status="error", error=f"{exc.__class__.__name__}: {exc}"[:300])
        run["seconds"] = round(time.perf_counter() - began, 3)
        print(json.dumps(run), flush=True)


# --- Server process: RSS and CPU from /proc ---


def process_tree(pid: int) -> list[int]:
    children = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def sample_server(pid: int) -> tuple[int, float, int]:
    """(RSS bytes, CPU seconds, processes) of the server's process tree."""
    rss, cpu, ticks = 0, 0.0, os.sysconf("SC_CLK_TCK")
    tree = process_tree(pid)
    for p in tree:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kb = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")), 0)
        rss += int(kb) * 1024
        cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return rss, cpu, len(tree)


# --- Load: an open loop at a fixed rate ---


def make_request(kind: str, rng: random.Random, ids, zones, cats) -> tuple[str, str, dict | None]:
    if kind == "dossier":
        return "GET", f"/v1/customers/{rng.choice(ids)}/dossier", None
    if kind == "compose":
        item = {
            "category": rng.choice(cats),
            "quantity": rng.randint(1, 4),
            "unit_price": rng.randint(100, 2000) / 100,
        }
        body = {"customer_id": rng.choice(ids), "cart": [item], "limit": 3}
        return "POST", "/v1/orders/compose", body
    body = {
        "zone": rng.choice(zones),
        "distance_km": rng.randint(1, 120) / 10,
        "item_count": rng.randint(1, 8),
    }
    return "POST", "/v1/deliveries/eta", body


class Answer(Exception):
    """The server closed the connection or sent what is not HTTP/1.1."""


async def exchange(reader, writer, raw: bytes) -> tuple[int, bytes, bool]:
    """Send one request, read its response: (status, body, server closes the connection)."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise Answer(lines[0][:80])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "chunked" in headers.get("transfer-encoding", ""):
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")  # no trailers expected
    else:
        body = await reader.readexactly(int(headers.get("content-length", 0)))
    return int(parts[1]), body, headers.get("connection") == "close"


async def connection(host: str, port: int, queue: asyncio.Queue, results: list, args) -> None:
    """One keep-alive connection taking requests from the queue until it yields None. Latency
    counts from the request's due time: time waiting in the queue is part of it."""
    loop = asyncio.get_running_loop()
    reader = writer = None
    while (item := await queue.get()) is not None:
        due, at, kind, raw = item
        result = {"at": at, "kind": kind}
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), args.timeout
                )
            status, body, close = await asyncio.wait_for(
                exchange(reader, writer, raw), args.timeout
            )
            result["status"] = status
            if 200 <= status < 300:
                data = json.loads(body)
                parts = [data["churn"], data["upsell"]] if kind == "dossier" else [data]
                result["answers"] = [(p["source"], p.get("reason")) for p in parts]
                if kind == "eta":
                    result["staleness_s"] = data.get("staleness_seconds")
            else:
                result["error"] = f"HTTP {status}"
        except Exception as exc:  # transport errors, timeouts, bodies without the fields
            result["error"] = exc.__class__.__name__
            close = True
        result["ms"] = (loop.time() - due) * 1000
        results.append(result)
        if close and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def encode(method: str, path: str, body: dict | None, host: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    data = json.dumps(body).encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


async def drive(args, base: str, server_pid: int, env: dict, log: Path, inputs) -> dict:
    loop = asyncio.get_running_loop()
    host, port = base.removeprefix("http://").rsplit(":", 1)
    seconds = args.minutes * 60
    t0 = time.time() + 1.0  # the load and the ingestion schedule share this origin
    start = loop.time() + (t0 - time.time())
    with log.open("ab") as err:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            "--ingest-worker",
            f"--t0={t0}",
            f"--until={t0 + seconds}",
            f"--time-scale={args.time_scale}",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    refreshes: list[dict] = []

    async def read_refreshes() -> None:
        async for line in worker.stdout:
            if not line.startswith(b"{"):  # not a refresh's line: keep it in the log
                with log.open("ab") as out:
                    out.write(line)
                continue
            refreshes.append(json.loads(line))
            r = refreshes[-1]
            print(
                f"  refresh {r['refresh']} (simulated {r['simulated_time']}) {r['status']} "
                f"in {r['seconds']:.2f} s, {r.get('deliveries_fed', 0)} deliveries fed"
                + (f": {r['error']}" if r.get("error") else ""),
                flush=True,
            )

    samples: list[tuple[float, int, float, int]] = []
    done = asyncio.Event()

    async def sample_rss() -> None:
        while True:
            rss, cpu, procs = sample_server(server_pid)
            samples.append((loop.time() - start, rss, cpu, procs))
            if done.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.rss_every)

    results: list[dict] = []
    queue: asyncio.Queue = asyncio.Queue()
    lags: list[float] = []  # how late the generator put each request on the queue
    depth: list[tuple[float, int]] = []  # (offset, requests waiting for a connection)

    async def progress() -> None:
        for minute in range(1, int(seconds // 60) + 1):
            await asyncio.sleep(max(0.0, start + 60 * minute - loop.time()))
            errors = sum(1 for r in results if "error" in r)
            rss = samples[-1][1] / MB if samples else 0
            print(
                f"  minute {minute}: {len(results):,} answered, {errors} errors, "
                f"{queue.qsize()} waiting for a connection, RSS {rss:.0f} MB",
                flush=True,
            )

    readers = [
        asyncio.create_task(read_refreshes()),
        asyncio.create_task(sample_rss()),
        asyncio.create_task(progress()),
    ]
    connections = [
        asyncio.create_task(connection(host, int(port), queue, results, args))
        for _ in range(args.connections)
    ]
    rng, (ids, zones, cats) = random.Random(args.seed), inputs
    try:
        for i in range(int(seconds * args.rate)):
            due = start + i / args.rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            kind = ENDPOINTS[i % len(ENDPOINTS)]
            raw = encode(*make_request(kind, rng, ids, zones, cats), host)
            lags.append((loop.time() - due) * 1000)
            queue.put_nowait((due, due - start, kind, raw))
            if i % int(max(args.rate, 1)) == 0:
                depth.append((due - start, queue.qsize()))
        for _ in connections:
            queue.put_nowait(None)
        await asyncio.gather(*connections)
        done.set()
        readers[2].cancel()
        await readers[1]
        # The worker stops by itself at the end; a refresh may still be running.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.wait(), timeout=120)
    finally:
        for task in connections:
            task.cancel()
        if worker.returncode is None:
            worker.terminate()
            await worker.wait()
    await readers[0]
    return {
        "results": results,
        "samples": samples,
        "refreshes": refreshes,
        "lags": lags,
        "depth": depth,
    }


# --- Figures ---


def quantiles(ms: list[float]) -> dict:
    if not ms:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    if len(ms) == 1:
        return {"p50_ms": ms[0], "p99_ms": ms[0], "max_ms": ms[0]}
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2), "max_ms": round(max(ms), 2)}


def summarize(group: list[dict]) -> dict:
    answers = [a for r in group for a in r.get("answers", ())]
    fallbacks = [a for a in answers if a[0] == "heuristic"]
    errors = collections.Counter(r["error"] for r in group if "error" in r)
    return {
        "requests": len(group),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        **quantiles([r["ms"] for r in group]),
        "answers": len(answers),
        "fallbacks": len(fallbacks),
        "fallback_share": len(fallbacks) / len(answers) if answers else None,
        "fallback_reasons": dict(collections.Counter(a[1] for a in fallbacks)),
    }


def figures(args, run: dict) -> dict:
    results, samples, refreshes = run["results"], run["samples"], run["refreshes"]
    seconds = args.minutes * 60
    minutes = []
    for m in range(max(1, -(-int(seconds) // 60))):
        lo, hi = 60 * m, min(60 * (m + 1), seconds)
        group = [r for r in results if lo <= r["at"] < hi]
        last = hi >= seconds
        inside = [s for s in samples if lo <= s[0] and (last or s[0] < hi + args.rss_every / 2)]
        ref = ([s for s in samples if s[0] <= lo] or samples[:1])[-1]
        cpu = None
        if inside and inside[-1][0] > ref[0]:
            cpu = (inside[-1][2] - ref[2]) / (inside[-1][0] - ref[0])
        queued = [q for at, q in run["depth"] if lo <= at < hi]
        stale = [r["staleness_s"] for r in group if r.get("staleness_s") is not None]
        minutes.append(
            {
                "minute": m + 1,
                **summarize(group),
                "rss_mb": round(inside[-1][1] / MB, 1) if inside else None,
                "server_cpu": round(cpu, 3) if cpu is not None else None,
                "eta_feature_age_max_s": max(stale) if stale else None,
                "refreshes": sum(1 for f in refreshes if lo <= f["started_s"] < hi),
                "queued_max": max(queued) if queued else None,
            }
        )
    # Baseline: the first sample after the warm-up (not the final one); a run no longer than
    # the warm-up falls back to its first sample under load.
    final = samples[-1]
    after = [s for s in samples[:-1] if s[0] >= args.warmup]
    baseline_note = None
    if not after:
        after = [s for s in samples[:-1] if s[0] >= 0] or samples
        baseline_note = "run not longer than the warm-up: baseline is the first sample under load"
    baseline = after[0]
    growth = final[1] / baseline[1] - 1
    slope = None
    if len(after) >= 3:  # least squares over the samples after the warm-up, MB per minute
        xs, ys = [s[0] / 60 for s in after], [s[1] / MB for s in after]
        slope = statistics.linear_regression(xs, ys).slope
    durations = [f["seconds"] for f in refreshes]
    lags = sorted(run["lags"])
    return {
        "minutes": minutes,
        "total": {
            **summarize(results),
            "offered_rps": args.rate,
            "achieved_rps": round(len(results) / seconds, 2),
            "by_endpoint": {
                k: summarize([r for r in results if r["kind"] == k]) for k in ENDPOINTS
            },
            "client_lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))], 2) if lags else None,
            "client_lag_max_ms": round(lags[-1], 2) if lags else None,
        },
        "rss": {
            "baseline_mb": round(baseline[1] / MB, 1),
            "baseline_at_s": round(baseline[0], 1),
            "final_mb": round(final[1] / MB, 1),
            "final_at_s": round(final[0], 1),
            "max_mb": round(max(s[1] for s in samples) / MB, 1),
            "growth": round(growth, 4),
            "baseline_note": baseline_note,
            "slope_mb_per_min": round(slope, 3) if slope is not None else None,
            "processes": final[3],
            "samples": [(round(s[0], 1), round(s[1] / MB, 1)) for s in samples],
        },
        "ingestion": {
            "refreshes": len(refreshes),
            "statuses": dict(collections.Counter(f["status"] for f in refreshes)),
            "seconds_min": min(durations) if durations else None,
            "seconds_median": statistics.median(durations) if durations else None,
            "seconds_max": max(durations) if durations else None,
            "deliveries_fed": sum(f.get("deliveries_fed", 0) for f in refreshes),
            "runs": refreshes,
        },
    }


def show(args, fig: dict) -> list[tuple[str, bool]]:
    def ms(v) -> str:
        return "" if v is None else f"{v:.1f}"

    print(f"\n{'minute':>6} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'fallback':>8} {'RSS MB':>7} {'srv CPU':>7} {'ETA age s':>9} "
          f"{'refreshes':>9} {'queued':>6}")  # fmt: skip
    for m in fig["minutes"]:
        share = "" if m["fallback_share"] is None else f"{m['fallback_share']:.1%}"
        cpu = "" if m["server_cpu"] is None else f"{m['server_cpu']:.0%}"
        age = "" if m["eta_feature_age_max_s"] is None else f"{m['eta_feature_age_max_s']:.0f}"
        print(f"{m['minute']:>6} {m['requests']:>8,} {m['errors']:>6} {ms(m['p50_ms']):>7} "
              f"{ms(m['p99_ms']):>7} {ms(m['max_ms']):>7} {share:>8} "
              f"{m['rss_mb'] or '':>7} {cpu:>7} {age:>9} {m['refreshes']:>9} "
              f"{'' if m['queued_max'] is None else m['queued_max']:>6}")  # fmt: skip
    t, rss, ing = fig["total"], fig["rss"], fig["ingestion"]
    share = "" if t["fallback_share"] is None else f"{t['fallback_share']:.1%}"
    print(f"{'total':>6} {t['requests']:>8,} {t['errors']:>6} {ms(t['p50_ms']):>7} "
          f"{ms(t['p99_ms']):>7} {ms(t['max_ms']):>7} {share:>8}")  # fmt: skip
    print(
        "\n(latency from each request's due time on a fixed schedule; fallback = answers from "
        "the heuristic; RSS = the server process at the minute's end; srv CPU = of one core; "
        "ETA age = oldest ETA feature age answered; queued = most requests waiting for a "
        "client connection, sampled each second)"
    )
    lag = f"p99 {t['client_lag_p99_ms']} ms, max {t['client_lag_max_ms']} ms"
    print(f"offered {t['offered_rps']} req/s, answered {t['achieved_rps']} req/s; client "
          f"dispatch lag {lag}")  # fmt: skip
    for kind, e in t["by_endpoint"].items():
        print(f"  {kind:<8} {e['requests']:>7,} requests, {e['errors']} errors, "
              f"p50 {ms(e['p50_ms'])} ms, p99 {ms(e['p99_ms'])} ms, fallbacks {e['fallbacks']}"
              + (f" {e['fallback_reasons']}" if e["fallback_reasons"] else ""))  # fmt: skip
    if t["error_kinds"]:
        print(f"errors: {t['error_kinds']}")
    print(f"RSS {rss['baseline_mb']} MB at {rss['baseline_at_s']} s (baseline) -> "
          f"{rss['final_mb']} MB at {rss['final_at_s']} s: {rss['growth']:+.1%} "
          f"(max {rss['max_mb']} MB; trend {rss['slope_mb_per_min']} MB/min)")  # fmt: skip
    if rss["baseline_note"]:
        print(f"  note: {rss['baseline_note']}")
    if ing["refreshes"]:
        print(f"ETA refreshes: {ing['refreshes']} {ing['statuses']}, "
              f"{ing['seconds_min']:.2f}/{ing['seconds_median']:.2f}/{ing['seconds_max']:.2f} s "
              f"min/median/max, {ing['deliveries_fed']} deliveries fed")  # fmt: skip
    else:
        print("ETA refreshes: none ran (the run is shorter than one refresh interval)")
    if t["client_lag_p99_ms"] and t["client_lag_p99_ms"] > 50:
        print("WARNING: the load generator fell behind its schedule (lag above); the latencies "
              "include that lag and the machine is too busy for a fair measurement")  # fmt: skip
    targets = [
        ("zero errors", t["errors"] == 0),
        (f"RSS growth <= {args.max_rss_growth:.0%}", rss["growth"] <= args.max_rss_growth),
        ("every ETA refresh succeeded", all(f["status"] == "succeeded" for f in ing["runs"])),
    ]
    print()
    for name, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return targets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--home", type=Path, default=Path("/tmp/mlops-bench/soak-home"))
    p.add_argument("--rate", type=float, default=100, help="Requests per second (offered).")
    p.add_argument("--minutes", type=float, default=10, help="How long the load runs.")
    p.add_argument(
        "--time-scale",
        type=float,
        default=5,
        help="Simulated seconds per real second: one ETA refresh every 300/SCALE s (default "
        "5: every 60 s).",
    )
    p.add_argument("--max-rss-growth", type=float, default=0.10, help="As a fraction.")
    p.add_argument("--warmup", type=float, default=60, help="Seconds before the RSS baseline.")
    p.add_argument("--rss-every", type=float, default=5, help="Seconds between RSS samples.")
    p.add_argument("--timeout", type=float, default=10, help="Per request, seconds (an error).")
    p.add_argument(
        "--connections",
        type=int,
        default=64,
        help="Client keep-alive connections; requests due while all are busy wait in a queue "
        "(the wait counts in their latency).",
    )
    p.add_argument("--seed", type=int, default=0, help="Of the request inputs.")
    p.add_argument("--port", type=int, default=0, help="Default: a free one.")
    p.add_argument("--rebuild", action="store_true", help="Run quickstart even if built.")
    p.add_argument("--ingest-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    p.add_argument("--until", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.ingest_worker:
        return ingest_worker(args)
    if args.rate <= 0 or args.minutes <= 0 or args.time_scale <= 0:
        sys.exit("--rate, --minutes and --time-scale must be positive")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on a kill too
    home = args.home.resolve()
    RESULTS.mkdir(exist_ok=True)
    tag = f"soak-{args.rate:g}rps-{args.minutes:g}min"
    log = RESULTS / f"{tag}.log"
    log.write_bytes(b"")
    env = served_env(home)  # the server's default settings

    from mlops.clock import SystemClock
    from mlops.db.engine import make_engine

    prepare_home(env, home, log, rebuild=args.rebuild)
    warehouse = make_engine(f"sqlite:///{home / 'warehouse.db'}")
    fed = start_feed(warehouse, SystemClock().now())
    warehouse.dispose()
    print(f"replayed {fed} deliveries into the warehouse (since the seeded ones or 5 h ago)")
    mlops(env, "ingest", "all", log=log)
    inputs = request_inputs(home)

    interval = SIM_STEP.total_seconds() / args.time_scale
    print(f"soak: {args.rate:g} req/s for {args.minutes:g} min over {', '.join(ENDPOINTS)}; "
          f"an ETA refresh every {interval:g} s (5 simulated minutes)")  # fmt: skip
    with serving(env, log, workers=1, port=args.port) as (server, base, ready):
        run = asyncio.run(drive(args, base, server.pid, env, log, inputs))
    fig = figures(args, run)
    targets = show(args, fig)
    problems = server_log_problems(log)
    for message, count in problems.items():
        print(f"server log: {count} x {message}")
    payload = {
        "benchmark": "soak",
        "when": datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "backend": "sqlite",
        "workers": 1,
        "rate": args.rate,
        "minutes": args.minutes,
        "time_scale": args.time_scale,
        "refresh_every_s": interval,
        "warmup_s": args.warmup,
        "timeout_s": args.timeout,
        "max_rss_growth": args.max_rss_growth,
        "home": str(home),
        "readyz": ready,
        **fig,
        "targets": [{"target": n, "pass": ok} for n, ok in targets],
        "server_log": str(log),
        "server_log_problems": problems,
    }
    path = RESULTS / f"{tag}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nwrote {path}")
    sys.exit(0 if all(ok for _, ok in targets) else 1)


if __name__ == "__main__":
    main()
