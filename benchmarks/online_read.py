"""Single-entity online read latency, in-process, over 2,000 calls.

python benchmarks/online_read.py [--database-url URL] [--customers N]
"""

from __future__ import annotations

import random
import time

from common import parser, percentiles, reset_store, runtime, write
from mlops.store import ingest
from mlops.store.online import OnlineStore


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--calls", type=int, default=2_000)
    args = p.parse_args()
    rt = runtime(args, "ingest")
    reset_store(rt)
    ingest.refresh(rt, "churn")
    with rt.store.connect() as conn:
        ids = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT entity_id FROM ml_feature_values WHERE job = 'churn'"
            )
        ]
    rng = random.Random(0)
    store = OnlineStore(rt.store, rt.clock)
    spec = rt.repo.job("churn")
    for eid in rng.sample(ids, 200):  # warm the connection and the statement cache
        store.get(spec, [eid])
    samples = []
    for eid in (rng.choice(ids) for _ in range(args.calls)):
        began = time.perf_counter()
        got = store.get(spec, [eid])
        samples.append((time.perf_counter() - began) * 1000)
        assert got[eid].status == "fresh"
    write("online_read", rt, {"entities": len(ids), "calls": args.calls, **percentiles(samples)})


if __name__ == "__main__":
    main()
