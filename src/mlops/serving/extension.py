"""A repository's own endpoints, served next to the generic ``predict`` one. The module that
``repository.yaml`` names as ``serving`` defines ``extend(service) -> Extension``; the service
answers the extension's endpoints with the same budget, fallback policy, circuits, A/B arms
and prediction log as every other (see ``endpoints.Endpoint``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlops.serving.endpoints import Endpoint
    from mlops.serving.service import Service


class Extension:
    """What a repository adds to serving; every hook does nothing by default."""

    name = "extension"  # what /readyz calls it when ``refresh`` fails

    def endpoints(self) -> Sequence[Endpoint]:
        """The endpoints the service answers (by name, in ``Service.answer``)."""
        return ()

    def routes(self, app: FastAPI, service: Service) -> None:
        """Add the HTTP routes of the endpoints to ``app`` (they call ``service.answer_async``)."""

    def refresh(self) -> None:
        """Re-read what the endpoints hold (called with the control poll); an exception keeps
        the last values, and /readyz says why."""

    def clear(self) -> None:
        """Forget cached reads (``Service.clear_cache``)."""

    def close(self) -> None:
        """Release connections and threads."""


def load(service: Service) -> Extension | None:
    """The extension of the service's repository, or None when it names no serving module."""
    repo = service.rt.repo
    if repo.serving is None:
        return None
    module = repo.module(repo.serving)
    extend = getattr(module, "extend", None)
    if not callable(extend):
        from mlops.errors import ConfigError

        raise ConfigError(
            f"{repo.path / (repo.serving + '.py')} defines no extend(service)",
            "define extend(service) -> mlops.serving.extension.Extension there, or remove "
            "serving: from repository.yaml",
        )
    return extend(service)
