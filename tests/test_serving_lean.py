"""The lean common case of a route (serving/lean.py): which requests it answers, and that every
other request reaches FastAPI's own handler with its body intact."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import FastAPI, Path, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, StringConstraints

from mlops.serving import lean

Name = Annotated[str, StringConstraints(min_length=1, max_length=8, pattern=r"^[a-z]+$")]


class Body(BaseModel):
    name: Name
    count: int = Field(1, ge=1, le=10)


def _app(max_body_size: int = 1024) -> tuple[FastAPI, list[str]]:
    served: list[str] = []
    app = FastAPI(max_body_size=max_body_size)

    async def answer_body(scope: dict, body: Body) -> Response:
        return Response(f"{body.name}x{body.count}", media_type="text/plain")

    async def answer_name(scope: dict, name: str) -> Response:
        return Response(name, media_type="text/plain")

    @app.post("/things")
    async def things(body: Body, request: Request):
        served.append("fastapi")
        return await answer_body(request.scope, body)

    @app.get("/things/{name}")
    async def thing(request: Request, name: str = Path(pattern=r"^[a-z]+$", max_length=8)):
        served.append("fastapi")
        return await answer_name(request.scope, name)

    async def counted_body(scope, body):
        served.append("lean")
        return await answer_body(scope, body)

    async def counted_name(scope, name):
        served.append("lean")
        return await answer_name(scope, name)

    lean.serve_common_case(app, "/things", "POST", lean.json_body(Body, counted_body))
    lean.serve_common_case(
        app, "/things/{name}", "GET", lean.path_param("name", Name, counted_name)
    )
    return app, served


def test_a_request_in_the_expected_shape_is_answered_without_fastapi():
    app, served = _app()
    with TestClient(app) as client:
        for content_type in ("application/json", "Application/JSON; charset=utf-8"):
            r = client.post(
                "/things",
                content=b'{"name": "abc", "count": 2}',
                headers={"content-type": content_type},
            )
            assert (r.status_code, r.text) == (200, "abcx2")
        assert client.get("/things/abc").text == "abc"
    assert served == ["lean", "lean", "lean"]


def test_any_other_request_gets_fastapis_own_answer_with_the_same_body():
    app, served = _app()
    with TestClient(app) as client:
        # FastAPI reads +json types as JSON; the lean case does not: the body is replayed.
        r = client.post(
            "/things",
            content=b'{"name": "abc"}',
            headers={"content-type": "application/vnd.test+json"},
        )
        assert (r.status_code, r.text) == (200, "abcx1")
        r = client.post("/things", json={"name": "ABC", "count": 11})
        assert r.status_code == 422
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "name"], ["body", "count"]]
        r = client.post(
            "/things", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
        r = client.get("/things/ABC")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "name"]
    assert served == ["fastapi"]  # the only valid one: the other three failed validation


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_refused_before_validation(chunked):
    app, served = _app(max_body_size=64)
    body = b'{"name": "abc", "pad": "' + b"x" * 100 + b'"}'
    content = iter([body[:50], body[50:]]) if chunked else body
    with TestClient(app) as client:
        r = client.post("/things", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert served == []
