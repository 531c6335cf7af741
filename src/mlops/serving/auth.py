"""Bearer-token guard of the admin routes; with no token configured they are disabled."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

# Declares the scheme in the OpenAPI schema (clients and fuzzers then know the admin routes
# want a bearer token). The header is read below, as sent: FastAPI's parsing strips spaces
# around the token, and a token with stray spaces is a wrong token.
BEARER = HTTPBearer(auto_error=False, description="MLOPS_API_TOKEN of the server.")


def require_admin(
    request: Request, _declared: HTTPAuthorizationCredentials | None = Depends(BEARER)
) -> str:
    """FastAPI dependency: the caller presented ``Authorization: Bearer <MLOPS_API_TOKEN>``.
    Returns an actor name for the audit trail."""
    token = request.app.state.service.settings.api_token
    if token is None or not token.get_secret_value():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "admin routes are disabled: set MLOPS_API_TOKEN on the server to enable them",
        )
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    # compare_digest takes the same time wherever the first difference is.
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token: send Authorization: Bearer <MLOPS_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return request.headers.get("x-actor", "api")[:128]
