"""The jobs' registered models in MLflow as ``mlops plan`` and ``mlops apply`` see them: which
exist, their aliases, and the ``mlops.retired`` tag apply sets on the model of a job removed
from the repository (nothing in the registry is ever deleted or re-pointed by apply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlops.errors import ConfigError, NotReadyError, brief

if TYPE_CHECKING:
    from mlops.settings import Settings

# Set on a registered model whose job the repository no longer declares: when and why.
RETIRED_TAG = "mlops.retired"
RETIRED_REASON_TAG = "mlops.retired_reason"
PAGE = 500


@dataclass(frozen=True)
class RegisteredModel:
    """One job's registered model: its name (the job's), aliases and tags."""

    name: str
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def retired(self) -> str | None:
        """When apply tagged it retired (ISO time), or None."""
        return self.tags.get(RETIRED_TAG)

    def describe(self) -> str:
        """``champion v3, challenger v4`` or ``no alias``."""
        if not self.aliases:
            return "no alias"
        return ", ".join(f"{a} v{v}" for a, v in sorted(self.aliases.items()))


def read(settings: Settings) -> dict[str, RegisteredModel]:
    """Every registered model mlops made (tagged with its job), by name; empty when no MLflow
    store exists yet (reading never creates one)."""
    from mlops.training import tracking_client
    from mlops.training.tracking import JOB_TAG

    try:
        found = _every_model(tracking_client.client(settings))
    except NotReadyError:
        return {}
    except Exception as exc:  # a registry that is down or refuses us: say where and why
        raise _unreadable(settings, exc) from None
    models = {}
    for model in found:
        tags = dict(model.tags or {})
        if JOB_TAG not in tags:
            continue  # not one of ours: apply leaves other projects' models alone
        aliases = {a: int(v) for a, v in (model.aliases or {}).items()}
        models[model.name] = RegisteredModel(model.name, aliases, tags)
    return models


def _every_model(client) -> list:
    # The registry answers in pages (100 models by default): read them all.
    found: list = []
    token = None
    while True:
        page = client.search_registered_models(max_results=PAGE, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def tag_retired(settings: Settings, name: str, when: str, reason: str) -> None:
    """Mark the job's registered model retired (versions and aliases are left as they are)."""
    try:
        client = _writer(settings)
        client.set_registered_model_tag(name, RETIRED_TAG, when)
        client.set_registered_model_tag(name, RETIRED_REASON_TAG, reason)
    except Exception as exc:
        raise _unreadable(settings, exc) from None


def untag_retired(settings: Settings, name: str) -> None:
    """Clear the retired mark of a job declared again."""
    try:
        client = _writer(settings)
        for tag in (RETIRED_TAG, RETIRED_REASON_TAG):
            client.delete_registered_model_tag(name, tag)
    except Exception as exc:
        raise _unreadable(settings, exc) from None


def _writer(settings: Settings):
    from mlops.training import tracking_client

    return tracking_client.client(settings, write=True)


def _unreadable(settings: Settings, exc: Exception) -> ConfigError:
    from mlops.errors import redact

    return ConfigError(
        f"the MLflow registry at {redact(settings.mlflow_uri)} cannot be used: {brief(exc)}",
        "check MLOPS_MLFLOW_TRACKING_URI and that the tracking server is up, then run again",
    )
