"""What the accuracy and guardrail tests share: logged answers written with serving's own
writer, warehouse outcome rows loaded with the warehouse's bulk loader, and ``mlops``
in-process on a test runtime."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from mlops.serving.prediction_log import PredictionLog
from mlops.warehouse.bulk import insert_frame
from tests.cli_support import invoke

ENDPOINTS = {"churn": "dossier", "upsell": "compose", "eta": "eta"}


def log_predictions(rt, rows: list[dict], *, version: int = 3) -> None:
    """Write prediction log rows with serving's own writer; what a row leaves out is a model
    answer (model ``version``; none when the row says the heuristic answered) without an arm."""
    writer = PredictionLog(rt.store, batch=1000, flush_seconds=60, max_pending=10**7)
    for i, row in enumerate(rows):
        source = row.get("source", "model")
        writer.add(
            {
                "request_id": f"r{i}",
                "endpoint": ENDPOINTS.get(row["job"], row["job"]),
                "subject_id": None,
                "source": source,
                "reason": None,
                "model_version": version if source == "model" else None,
                "features_computed_at": None,
                "latency_ms": 1.0,
                "arm": None,
                **row,
            }
        )
    assert writer.flush() == len(rows)


def load(rt, table, rows: list[dict]) -> None:
    """Insert ``rows`` into the warehouse ``table``; offer impressions bring the offers they
    show when the warehouse has none of that id (an impression always shows a known offer, and
    the upsell label SQL, the accuracy monitor's outcome, joins them)."""
    from sqlalchemy import select

    from mlops.examples.marketplace import warehouse as wh

    with rt.warehouse.begin() as conn:
        if table is wh.offer_impressions:
            known = set(conn.execute(select(wh.offers.c.offer_id)).scalars())
            new = sorted({r["offer_id"] for r in rows} - known)
            if new:
                insert_frame(conn, wh.offers, pd.DataFrame([offer(o) for o in new]))
        insert_frame(conn, table, pd.DataFrame(rows))


def offer(oid: str) -> dict:
    """A warehouse offer row."""
    return {"offer_id": oid, "category": "snacks", "discount_pct": 10.0, "price": 5.0}


def order(oid: str, customer: str, at: datetime, status: str = "completed") -> dict:
    """A warehouse order row."""
    return {
        "order_id": oid,
        "customer_id": customer,
        "placed_at": at,
        "status": status,
        "item_count": 1,
        "total_amount": 10.0,
    }


def impression(iid: str, customer: str, offer: str, at: datetime, accepted: bool) -> dict:
    """A warehouse offer impression row."""
    return {
        "impression_id": iid,
        "customer_id": customer,
        "offer_id": offer,
        "order_id": None,
        "shown_at": at,
        "accepted": accepted,
    }


def delivery(did: str, dispatched: datetime, delivered: datetime | None, zone="z1") -> dict:
    """A warehouse delivery row, promised 30 minutes after dispatch."""
    return {
        "delivery_id": did,
        "order_id": None,
        "zone": zone,
        "courier_id": "k1",
        "distance_km": 2.0,
        "dispatched_at": dispatched,
        "promised_at": dispatched + timedelta(minutes=30),
        "delivered_at": delivered,
    }


def cli_on(rt, monkeypatch, capsys):
    """A runner of ``mlops monitor ...`` in-process on ``rt`` (its frozen clock): ``run(*args)``
    gives (exit status, stdout, stderr) with wrapped lines joined."""
    import mlops.cli.app  # noqa: F401
    from mlops.cli import runtime as cli_runtime

    # The other command modules bind ``runtime`` when first imported: imported here first,
    # they keep the real one, so later tests' commands never reach this test's ``rt``. The
    # monitor commands look it up when they run, so they see the patch.
    monkeypatch.setattr(cli_runtime, "runtime", lambda ctx: rt)

    def run(*args: str) -> tuple[int, str, str]:
        return invoke(capsys, *args, flat=True)

    return run
