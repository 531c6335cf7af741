"""The one alert path: every monitor reports what is wrong now, and an incident is raised once
(a log line with a stable event name, and a POST to the webhook when one is set), kept open
while it lasts and resolved when a check no longer finds it."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mlops.db.engine import inserted_id
from mlops.db.schema import alerts as table
from mlops.runtime import Runtime
from mlops.settings import Settings

log = logging.getLogger("mlops.monitoring")

KINDS = ("drift", "stale_features", "ingestion_failed", "accuracy", "guardrail")
OPENED = "mlops.alert.opened"
RESOLVED = "mlops.alert.resolved"


@dataclass(frozen=True)
class Alert:
    """One incident: what is wrong (``subject`` of ``kind`` for ``job``) since when."""

    alert_id: int
    kind: str
    job: str
    subject: str
    message: str
    opened_at: datetime


def check(
    rt: Runtime,
    kind: str,
    job: str,
    firing: Mapping[str, str],
    *,
    scope: Collection[str] | None = None,
    backoff_seconds: float = 0.5,
) -> list[Alert]:
    """Reconcile one check's findings (subject -> message, for what is wrong now) with the open
    incidents of ``kind`` for ``job``: open the new ones, touch the ongoing ones, resolve the
    ones in ``scope`` (default: all) no longer firing. Returns the alerts opened by this call."""
    if kind not in KINDS:
        raise ValueError(f"alert kind {kind!r} is not one of {KINDS}")
    now = rt.clock.now()
    t = table
    opened: list[Alert] = []
    resolved: list[Any] = []
    with rt.store.begin() as conn:
        current = {
            r.subject: r
            for r in conn.execute(
                select(t).where(t.c.kind == kind, t.c.job == job, t.c.status == "open")
            )
        }
        for subject, message in firing.items():
            row = current.get(subject)
            if row is not None:
                conn.execute(
                    t.update()
                    .where(t.c.alert_id == row.alert_id)
                    .values(last_seen_at=now, occurrences=t.c.occurrences + 1, message=message)
                )
                continue
            alert_id = inserted_id(
                conn.execute(
                    t.insert().values(
                        kind=kind,
                        job=job,
                        subject=subject,
                        status="open",
                        message=message,
                        opened_at=now,
                        last_seen_at=now,
                        occurrences=1,
                        delivered=False,
                    )
                )
            )
            opened.append(Alert(int(alert_id), kind, job, subject, message, now))
        for subject, row in current.items():
            if subject not in firing and (scope is None or subject in scope):
                conn.execute(
                    t.update()
                    .where(t.c.alert_id == row.alert_id)
                    .values(status="resolved", resolved_at=now)
                )
                resolved.append(row)
    # Deliveries happen after the commit: a slow webhook never holds a transaction, and an
    # alert whose delivery failed is retried by the next check while it is still open.
    for alert in opened:
        log.warning(
            f"{OPENED} kind={kind} job={job} subject={alert.subject}: {alert.message}",
            extra={"event": OPENED, "alert_id": alert.alert_id, "job": job, "kind": kind},
        )
    undelivered = [
        Alert(r.alert_id, kind, job, r.subject, firing[r.subject], r.opened_at)
        for r in current.values()
        if r.subject in firing and not r.delivered
    ]
    for alert in [*opened, *undelivered]:
        if post(rt.settings, _payload(alert, "open"), backoff_seconds=backoff_seconds):
            with rt.store.begin() as conn:
                conn.execute(
                    t.update().where(t.c.alert_id == alert.alert_id).values(delivered=True)
                )
    for row in resolved:
        log.info(
            f"{RESOLVED} kind={kind} job={job} subject={row.subject}",
            extra={"event": RESOLVED, "alert_id": row.alert_id, "job": job, "kind": kind},
        )
        resolved_alert = Alert(row.alert_id, kind, job, row.subject, row.message, row.opened_at)
        post(rt.settings, _payload(resolved_alert, "resolved"), backoff_seconds=backoff_seconds)
    return opened


def open_alerts(rt: Runtime, job: str | None = None) -> list[Alert]:
    """The incidents open now, oldest first."""
    t = table
    query = select(t).where(t.c.status == "open").order_by(t.c.alert_id)
    if job is not None:
        query = query.where(t.c.job == job)
    with rt.store.connect() as conn:
        return [
            Alert(r.alert_id, r.kind, r.job, r.subject, r.message, r.opened_at)
            for r in conn.execute(query)
        ]


def post(settings: Settings, payload: dict[str, Any], *, backoff_seconds: float = 0.5) -> bool:
    """POST ``payload`` to the alert webhook, retrying with exponential backoff; True when it
    was accepted, False when no webhook is set or every attempt failed (logged, never raised:
    an unreachable pager must not stop the monitors)."""
    if settings.alert_webhook_url is None:
        return False
    import httpx

    url = settings.alert_webhook_url.get_secret_value()
    attempts = settings.alert_webhook_retries + 1
    problem = ""
    for attempt in range(attempts):
        try:
            response = httpx.post(url, json=payload, timeout=settings.alert_webhook_timeout_seconds)
            if response.is_success:
                return True
            problem = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            problem = exc.__class__.__name__
        if attempt + 1 < attempts:
            time.sleep(backoff_seconds * 2**attempt)
    # The URL may carry a token: never logged.
    log.error(
        f"alert webhook failed after {attempts} attempts: {problem}",
        extra={"event": "mlops.alert.undelivered", "alert_id": payload.get("alert_id")},
    )
    return False


def _payload(alert: Alert, status: str) -> dict[str, Any]:
    return {
        "event": OPENED if status == "open" else RESOLVED,
        "alert_id": alert.alert_id,
        "kind": alert.kind,
        "job": alert.job,
        "subject": alert.subject,
        "status": status,
        "message": alert.message,
        "opened_at": alert.opened_at.isoformat() + "Z",
    }
