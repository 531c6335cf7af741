"""A/B arms and guardrails: what the experiment costs serving, and the guardrail check over a
large prediction log.

    python benchmarks/guardrails.py [--database-url URL] [--requests N] [--predictions N]

1. ``arms.assign`` per call: share 1.0 (no experiment: no hash) and 0.5 (one BLAKE2b-64).
2. Serving in-process (``Service.answer``, no HTTP) on a small quickstart home built once
   under --home (SQLite whatever --database-url says): the dossier and the ETA per request
   with no experiment (share 1.0), with a hash on every request but everyone treated (share
   0.999999: the assignment's whole overhead), and a real 50/50 split (the control half
   answers by heuristic). The variants are interleaved in blocks so a busy machine slows
   them alike.
3. ``guardrails.check`` for every job (without recording) over the prediction log that
   benchmarks/accuracy.py generates (1,000,000 answers by default; generated here when
   missing): wall and CPU seconds per job.
"""

from __future__ import annotations

import random
import sys
import time

from common import END, parser, percentiles, read_marker, write
from mlops.clock import FrozenClock
from mlops.runtime import Runtime
from mlops.settings import Settings

VARIANTS = {"no experiment": 1.0, "hash, all treated": 0.999999, "50/50": 0.5}


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(customers=100_000, days=90)
    p.add_argument("--requests", type=int, default=3_000, help="Per endpoint and variant.")
    p.add_argument("--predictions", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    rt, tag = check_runtime(args)
    try:
        figures = {
            "assign": assign_cost(),
            "serving": serving(args),
            "check": {"prediction_log": tag, **check(rt, args)},
        }
        write("guardrails", rt, figures)
    finally:
        rt.close()


def assign_cost() -> dict:
    from mlops.serving.arms import assign

    ids = [f"C{i:07d}" for i in range(200_000)]
    found = {}
    for share in (1.0, 0.5):
        best = min(_loop(assign, share, ids) for _ in range(3))
        found[f"share_{share}_ns_per_call"] = round(best * 1e9 / len(ids), 1)
        print(f"assign(share={share}): {best * 1e9 / len(ids):.0f} ns/call", file=sys.stderr)
    return found


def _loop(assign, share, ids) -> float:
    began = time.perf_counter()
    for i in ids:
        assign(share, "mlops-ab-1", "churn", i)
    return time.perf_counter() - began


def serving(args) -> dict:
    """Per-request latency of the dossier and the ETA under each variant, interleaved."""
    from sqlalchemy import select

    from mlops import quickstart
    from mlops.db.schema import feature_values as fv
    from mlops.serving.service import Service

    home = args.home / "ab-home"
    settings = Settings(home=home)
    rt = Runtime(settings=settings, clock=FrozenClock(END))
    if not (home / "mlflow.db").exists():
        began = time.perf_counter()
        quickstart.run(rt, size=1500, days=100, seed=3)
        print(f"quickstart home in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    with rt.store.connect() as conn:
        customers = list(conn.execute(select(fv.c.entity_id).where(fv.c.job == "churn")).scalars())
        zones = list(conn.execute(select(fv.c.entity_id).where(fv.c.job == "eta")).scalars())
    svc = Service(rt)
    svc.start(poll=False)
    rng = random.Random(args.seed)
    calls = {
        "dossier": lambda: svc.extension.dossier(rng.choice(customers)),
        "eta": lambda: svc.extension.eta(
            rng.choice(zones), rng.uniform(0.5, 12), delivery_id=f"D{rng.randrange(10**9)}"
        ),
    }
    samples = {(e, v): [] for e in calls for v in VARIANTS}
    sources = {(e, v): 0 for e in calls for v in VARIANTS}
    try:
        for endpoint, call in calls.items():
            for _ in range(200):  # warm caches, connections and the score memo's misses
                call()
            block = 100
            for _ in range(args.requests // block):
                for variant, share in VARIANTS.items():
                    svc.settings = settings.model_copy(
                        update={
                            "ab_treatment_share": dict.fromkeys(("churn", "upsell", "eta"), share)
                        }
                    )
                    for _ in range(block):
                        began = time.perf_counter()
                        answer = call()
                        samples[endpoint, variant].append((time.perf_counter() - began) * 1000)
                        first = answer.churn if endpoint == "dossier" else answer
                        sources[endpoint, variant] += first.source == "model"
    finally:
        svc.close()
        rt.close()
    found = {}
    for (endpoint, variant), ms in samples.items():
        stats = percentiles(ms)
        stats["model_share"] = round(sources[endpoint, variant] / len(ms), 3)
        found[f"{endpoint}: {variant}"] = {"requests": len(ms), **stats}
        print(
            f"{endpoint:8} {variant:18} p50 {stats['p50_ms']:.3f} ms  p99 {stats['p99_ms']:.3f} ms"
            f"  mean {stats['mean_ms']:.3f} ms  model {stats['model_share']:.0%}",
            file=sys.stderr,
        )
    return found


def check_runtime(args) -> tuple[Runtime, str]:
    """The accuracy benchmark's prediction log and outcomes (generated when missing)."""
    import accuracy as accuracy_bench
    from mlops.db import migrate

    tag = f"accuracy-{args.predictions}p-{args.customers}c-{args.days}d-s{args.seed}"
    home = args.home / tag
    rt = Runtime(
        settings=Settings(
            home=home,
            database_url=args.database_url or f"sqlite:///{home / 'store.db'}",
            warehouse_url=args.database_url or f"sqlite:///{home / 'warehouse.db'}",
        ),
        clock=FrozenClock(END),
    )
    if read_marker(rt.store) != tag:
        migrate.upgrade(rt.store)
        generated = accuracy_bench.generate(rt, args)
        accuracy_bench._set_marker(rt, tag, generated)
    return rt, tag


def check(rt: Runtime, args) -> dict:
    """guardrails.check(record=False) per job over that prediction log."""
    import accuracy as accuracy_bench
    from mlops.monitoring import guardrails

    found = {}
    for job in guardrails.JOBS:
        (wall, cpu), (result,) = accuracy_bench.timed(
            args.repeat, lambda job=job: guardrails.check(rt, job, record=False)
        )
        c = result.comparison
        found[job] = {
            "units_control": c.control.n,
            "units_treatment": c.treatment.n,
            "decision": c.decision,
            "wall_seconds": wall,
            "cpu_seconds": cpu,
        }
        print(
            f"check({job}): {c.control.n + c.treatment.n:,} units in {wall:.2f} s "
            f"({cpu:.2f} s cpu)",
            file=sys.stderr,
        )
    return found


if __name__ == "__main__":
    main()
