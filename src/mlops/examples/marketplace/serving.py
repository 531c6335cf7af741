"""The marketplace's own endpoints, served next to the generic ``/v1/jobs/{job}/predict``:
the customer dossier, the order composer and the delivery ETA (``repository.yaml`` names
this module as ``serving``; the engine calls ``extend``)."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

import numpy as np
from fastapi import FastAPI, Path, Request, Response

from mlops.serving import lean
from mlops.serving.app import (
    BODY_ERRORS,
    ENTITY_ERRORS,
    UNPROCESSABLE,
    json_response,
    request_id,
)
from mlops.serving.endpoints import Endpoint
from mlops.serving.extension import Extension
from mlops.serving.memo import Memo
from mlops.serving.schemas import ID_MAX, ID_PATTERN, Id
from mlops.serving.service import Service

from . import answers
from .profiles import Offer, WarehouseReads
from .schemas import ComposeRequest, Composition, Dossier, Eta, EtaRequest

DOSSIER_PATH = "/v1/customers/{customer_id}/dossier"
COMPOSE_PATH = "/v1/orders/compose"
ETA_PATH = "/v1/deliveries/eta"


def extend(svc: Service) -> Marketplace:
    """The marketplace's endpoints for ``svc``."""
    return Marketplace(svc)


class Marketplace(Extension):
    """What the marketplace's endpoints hold: warehouse reads (customer profiles, cached for
    ``profile_cache_seconds``), the active offers (re-read with the control poll) and the
    offers' encoded rows per model version."""

    name = "warehouse"

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.warehouse = WarehouseReads(
            svc.rt.warehouse, cache_seconds=svc.settings.profile_cache_seconds
        )
        self.offers: list[Offer] = []
        self.offers_version = 0  # bumped when the offers change: part of cached scores' keys
        self.offer_rows: Memo[np.ndarray] = Memo(1_000)

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "dossier",
                lambda **kw: answers.dossier(self, **kw),
                jobs=lambda _: ("churn", "upsell"),
                unit=lambda inputs: inputs["customer_id"],
                slo_ms=50.0,
            ),
            Endpoint(
                "compose",
                lambda **kw: answers.compose(self, **kw),
                jobs=lambda _: ("upsell",),
                unit=lambda inputs: inputs["customer_id"],
                slo_ms=50.0,
            ),
            Endpoint(
                "eta",
                lambda **kw: answers.eta(self, **kw),
                jobs=lambda _: ("eta",),
                unit=lambda inputs: answers.eta_unit(inputs["zone"], inputs.get("delivery_id")),
                slo_ms=30.0,
            ),
        ]

    def refresh(self) -> None:
        offers = self.warehouse.offers()
        if offers != self.offers:
            self.offers, self.offers_version = offers, self.offers_version + 1

    def clear(self) -> None:
        self.warehouse.clear()

    def close(self) -> None:
        self.warehouse.close()

    # --- the endpoints from Python ---------------------------------------------------------

    def dossier(self, customer_id: str, *, request_id: str = "") -> Dossier:
        """The customer's profile with churn risk and upsell propensity."""
        return self.svc.answer("dossier", request_id, customer_id=customer_id)

    def compose(
        self,
        customer_id: str,
        *,
        cart: list[dict[str, Any]] | None = None,
        offer_ids: list[str] | None = None,
        limit: int = 3,
        request_id: str = "",
    ) -> Composition:
        """Candidate offers ranked by upsell propensity (the model's, else the rule's)."""
        return self.svc.answer(
            "compose",
            request_id,
            customer_id=customer_id,
            cart=cart,
            offer_ids=offer_ids,
            limit=limit,
        )

    def eta(
        self,
        zone: str,
        distance_km: float,
        item_count: int = 1,
        *,
        dispatched_at: datetime | None = None,
        delivery_id: str | None = None,
        request_id: str = "",
    ) -> Eta:
        """The SLA estimate, the model's minutes and what to promise, with the promise time."""
        return self.svc.answer(
            "eta",
            request_id,
            zone=zone,
            distance_km=distance_km,
            item_count=item_count,
            dispatched_at=dispatched_at,
            delivery_id=delivery_id,
        )

    # --- the HTTP routes -------------------------------------------------------------------

    def routes(self, app: FastAPI, service: Service) -> None:
        async def answer_dossier(scope: MutableMapping[str, Any], customer_id: str) -> Response:
            answer = await service.answer_async(
                "dossier", request_id(scope), customer_id=customer_id
            )
            return json_response(answer)

        async def answer_compose(scope: MutableMapping[str, Any], body: ComposeRequest) -> Response:
            answer = await service.answer_async(
                "compose",
                request_id(scope),
                customer_id=body.customer_id,
                cart=[item.model_dump() for item in body.cart],
                offer_ids=body.offer_ids,
                limit=body.limit,
            )
            return json_response(answer)

        async def answer_eta(scope: MutableMapping[str, Any], body: EtaRequest) -> Response:
            answer = await service.answer_async(
                "eta",
                request_id(scope),
                zone=body.zone,
                distance_km=body.distance_km,
                item_count=body.item_count,
                dispatched_at=body.dispatched_at,
                delivery_id=body.delivery_id,
            )
            return json_response(answer)

        @app.get(DOSSIER_PATH, response_model=Dossier, responses=ENTITY_ERRORS)
        async def dossier(
            request: Request,
            customer_id: str = Path(
                min_length=1, max_length=ID_MAX, pattern=ID_PATTERN, examples=["C000042"]
            ),
        ):
            """Profile summary with churn risk and upsell propensity."""
            return await answer_dossier(request.scope, customer_id)

        @app.post(
            COMPOSE_PATH,
            response_model=Composition,
            responses={**ENTITY_ERRORS, **BODY_ERRORS, **UNPROCESSABLE},
        )
        async def compose(body: ComposeRequest, request: Request):
            """Rank candidate offers for a customer's cart by upsell propensity."""
            return await answer_compose(request.scope, body)

        @app.post(ETA_PATH, response_model=Eta, responses={**BODY_ERRORS, **UNPROCESSABLE})
        async def eta(body: EtaRequest, request: Request):
            """SLA estimate, model estimate and the promise to make."""
            return await answer_eta(request.scope, body)

        # The same answers for requests in the expected shape, without FastAPI's per-request
        # work; any other request still goes through the handlers above.
        lean.serve_common_case(
            app, DOSSIER_PATH, "GET", lean.path_param("customer_id", Id, answer_dossier)
        )
        lean.serve_common_case(
            app, COMPOSE_PATH, "POST", lean.json_body(ComposeRequest, answer_compose)
        )
        lean.serve_common_case(app, ETA_PATH, "POST", lean.json_body(EtaRequest, answer_eta))
