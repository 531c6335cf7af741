"""The FastAPI app, built by ``create_app`` (uvicorn's factory); nothing happens at import.
Routes parse, call ``Service`` and format."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from mlops.errors import InputError
from mlops.monitoring import report as monitoring_report
from mlops.runtime import Runtime
from mlops.serving import flags as flag_store
from mlops.serving import lean, predict, schemas
from mlops.serving.auth import require_admin
from mlops.serving.endpoints import NotFound, Unavailable
from mlops.serving.middleware import RequestContext
from mlops.serving.service import Service
from mlops.settings import Settings

# The largest valid request of the bundled example (an order with 200 cart items and 500 offer
# ids) is well under 100 KB; a bigger body is refused with 413 before it is read in full.
MAX_BODY_BYTES = 256 * 1024


# The routes' documented error answers (a repository's own routes use them too).
Responses = dict[int | str, dict[str, Any]]
ENTITY_ERRORS: Responses = {404: {"model": schemas.Problem}, 503: {"model": schemas.Problem}}
_PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}
# What FastAPI answers itself for a body it cannot take: 400 when it cannot read it, 413
# over MAX_BODY_BYTES (plain text when Content-Length says so up front, JSON when a
# chunked body passes the limit).
BODY_ERRORS: Responses = {
    400: {"model": schemas.Problem, "description": "Unreadable body"},
    413: {
        "description": "Body over MAX_BODY_BYTES",
        "content": {"application/json": _PROBLEM, "text/plain": {}},
    },
}
# 422: FastAPI's validation errors, or an InputError's message (e.g. an input out of range).
UNPROCESSABLE: Responses = {
    422: {
        "description": "Invalid request",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/HTTPValidationError"},
                        {"$ref": "#/components/schemas/Problem"},
                    ]
                }
            }
        },
    }
}
ADMIN: Responses = {
    401: {"model": schemas.Problem, "description": "Missing or wrong bearer token"},
    403: {"model": schemas.Problem, "description": "Admin routes disabled (no token set)"},
    503: {"model": schemas.Problem, "description": "The database is unreachable"},
}


def create_app(runtime: Runtime | None = None, *, poll: bool = True) -> FastAPI:
    """The serving app over ``runtime`` (default: settings from the environment, system clock).
    Champions load and pollers start when the app starts, not here."""
    # One OpenMP thread per process: a single-row predict is fastest that way, and several
    # workers must not fight over the cores (see FIELD-NOTES).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if runtime is None:
        settings = Settings()
        # Every request thread and model thread may hold a connection to each database, plus
        # the pollers, the prediction log and /readyz.
        pool = settings.serve_threads + settings.model_threads + 4
        rt = Runtime(settings=settings, pool_size=pool)
    else:
        rt = runtime
    service = Service(rt)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = rt.settings.serve_threads
        await anyio.to_thread.run_sync(lambda: service.start(poll=poll))
        if runtime is None:
            # A server process: the start-up heap (MLflow, pandas, LightGBM, the models) is
            # hundreds of thousands of objects that live as long as the process. Moving them
            # out of the collector's sight keeps full collections from pausing requests for
            # hundreds of milliseconds.
            gc.freeze()
            # Background threads (prediction log, pollers, the model pool) hold the GIL for up
            # to the switch interval when a request needs it: 5 ms by default, a p99 of its own.
            sys.setswitchinterval(0.0005)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.close)
            service.metrics.process_exited(os.getpid())
            if runtime is None:
                rt.close()

    app = FastAPI(
        title="mlops serving",
        version="1",
        description="Every job of the feature repository, and the repository's own endpoints: "
        "from the champion model when it is safe, else from rules; every ML-backed field says "
        "which and why.",
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.service = service
    if rt.settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        # Added before RequestContext, so inside it: preflights get a request id and a log line.
        # No credentials: admin calls carry a bearer token, never a cookie.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=rt.settings.cors_origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["authorization", "content-type", "x-request-id", "x-actor"],
            expose_headers=["x-request-id"],
        )
    app.add_middleware(
        RequestContext, metrics=service.metrics, log_requests=rt.settings.log_requests
    )
    _routes(app, service)
    return app


def json_response(answer: BaseModel) -> Response:
    # The service built and validated the model already: serialise it once, as is.
    return Response(answer.model_dump_json(), media_type="application/json")


def _wire(record: Any) -> dict[str, Any]:
    """A dataclass record as JSON-ready fields, its times as RFC 3339 UTC like the answers'."""
    return {
        k: schemas.utc_text(v) if isinstance(v, datetime) else v for k, v in vars(record).items()
    }


def request_id(scope: Mapping[str, Any]) -> str:
    """The request id the middleware gave the request (``x-request-id``)."""
    return scope.get("state", {}).get("request_id", "")


# A route's answer to its scope and parsed body.
Answer = Callable[[MutableMapping[str, Any], Any], Awaitable[Response]]


def _predict_route(
    app: FastAPI,
    job: str,
    body_model: type[schemas.PredictRequest],
    answer_predict: Callable[[str], Answer],
) -> None:
    path = f"/v1/jobs/{job}/predict"
    answer = answer_predict(job)

    async def predict_job(request: Request, body: Any) -> Response:
        return await answer(request.scope, body)

    # FastAPI reads the body's model from the annotation: this job's own.
    predict_job.__annotations__["body"] = body_model
    predict_job.__doc__ = (
        f"{job}'s value for one entity and the request's inputs: from the champion on the "
        "entity's fresh features when it is safe, else from the job's heuristic, saying why."
    )
    app.post(
        path,
        response_model=schemas.Prediction,
        responses={**ENTITY_ERRORS, **BODY_ERRORS, **UNPROCESSABLE},
        operation_id=f"predict_{job}",
        name=f"predict {job}",
    )(predict_job)
    # The same answers for requests in the expected shape, without FastAPI's per-request work;
    # any other request still goes through the handler above.
    lean.serve_common_case(app, path, "POST", lean.json_body(body_model, answer))


def _routes(app: FastAPI, service: Service) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError):
        # A route that reaches the database itself (the admin writes) while it is down. The
        # driver's message may quote SQL, parameters or the server: name only the failure.
        return JSONResponse(
            {
                "detail": f"the database cannot be used now ({type(exc).__name__}): check "
                "MLOPS_DATABASE_URL and the database server, then retry"
            },
            status_code=503,
        )

    @app.exception_handler(InputError)
    async def _bad_input(request: Request, exc: InputError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    # The ML routes are async: the service answers from memory on the loop when it can, else
    # on its model pool (one thread hop), so the loop never blocks on a read or a model.
    def answer_predict(job: str) -> Answer:
        async def answer(scope: MutableMapping[str, Any], body: schemas.PredictRequest) -> Response:
            result = await service.answer_async(
                predict.ENDPOINT,
                request_id(scope),
                job=job,
                entity_id=body.entity_id,
                inputs=body.inputs,
                at=body.at,
                subject_id=body.subject_id,
            )
            return json_response(result)

        return answer

    # One route per job, each with the job's own body: the OpenAPI schema then states each
    # job's inputs, their types and bounds, instead of "any name to any value".
    for job in service.jobs:
        _predict_route(app, job, predict.request_model(service.rt.repo.job(job)), answer_predict)

    # Any other job: a 404 that lists the jobs (the schema has the jobs' own routes only).
    @app.post("/v1/jobs/{job}/predict", include_in_schema=False)
    async def no_such_job(request: Request):
        raise NotFound(
            f"no job {request.path_params['job']!r}",
            f"jobs are: {', '.join(service.jobs)} (`mlops jobs list`)",
        )

    if service.extension:
        service.extension.routes(app, service)

    @app.get("/healthz", response_model=schemas.Health)
    async def healthz():
        """The process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=schemas.Readiness,
        responses={503: {"model": schemas.Readiness, "description": "Not ready; says why"}},
    )
    def readyz():
        """Database reachable; champions loaded, or heuristics-only mode stated."""
        state = service.readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    def metrics():
        """Prometheus exposition."""
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)

    plotly_route = monitoring_report.plotly_js_route()

    # Sync routes: FastAPI runs them on its thread pool, so reading the database and drawing the
    # charts never blocks the event loop.
    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard(
        days: int = Query(30, ge=1, le=365, description="Days back (3 or fewer: per hour)."),
    ):
        """Monitoring dashboard (HTML, Plotly charts; read-only): drift status per feature,
        fallback rates by reason, feature freshness against TTL, residuals of regression
        jobs, accuracy of model vs heuristic, the A/B guardrails, feature distributions against
        the champion's reference, scores by cohort, ingestion runs; the version serving each
        job and the open alerts. ``mlops monitor report`` writes the same
        page to a file."""
        page = monitoring_report.page(
            service.rt,
            since=timedelta(days=days),
            plotly_src=plotly_route,
            serving=service.champions.versions(),
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get(plotly_route, include_in_schema=False)
    def dashboard_plotly():
        # Versioned path: browsers keep it for good and the page never resends ~4.8 MB.
        return Response(
            monitoring_report.plotly_js(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    @app.get(
        "/v1/admin/flags",
        dependencies=[Depends(require_admin)],
        response_model=schemas.Controls,
        responses=ADMIN,
    )
    def get_flags():
        """Every flag and the active trips."""
        return {
            "flags": {n: _wire(f) for n, f in service.controls.flags.items()},
            "trips": {j: [_wire(t) for t in ts] for j, ts in service.controls.trips.items()},
        }

    @app.put(
        "/v1/admin/flags/{name}",
        response_model=schemas.Flag,
        responses={**ADMIN, **BODY_ERRORS, 404: {"model": schemas.Problem}},
    )
    def put_flag(
        body: schemas.FlagUpdate,
        name: str = Path(description="``ml`` (every job) or a job.", examples=[flag_store.GLOBAL]),
        actor: str = Depends(require_admin),
    ):
        """Turn ML on or off for a job or for all (``ml``); clears cached features."""
        names = flag_store.names(service.rt.repo.names)
        if name not in names:
            raise HTTPException(404, f"no flag {name!r}: flags are {', '.join(names)}")
        return _wire(service.set_flag(name, body.enabled, reason=body.reason, actor=actor))

    @app.post(
        "/v1/admin/cache/clear",
        dependencies=[Depends(require_admin)],
        response_model=schemas.CacheCleared,
        responses=ADMIN,
    )
    def clear_cache():
        """Drop cached scores, profiles and feature rows here, and feature rows in Redis."""
        return {"redis_keys_deleted": service.clear_cache()}

    @app.post(
        "/v1/admin/models/reload",
        dependencies=[Depends(require_admin)],
        response_model=schemas.Reloaded,
        responses=ADMIN,
    )
    def reload_models():
        """Ask the registry for the champions now instead of at the next poll."""
        return {"changes": service.reload_models(), "champions": service.champions.versions()}
