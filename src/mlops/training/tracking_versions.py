"""A job's registered versions in the MLflow registry and its aliases (``challenger``,
``champion``): reading them, and pointing or removing an alias. The promotion gate that decides
where ``champion`` points lives in ``registry``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.errors import InputError, NotReadyError
from mlops.training import tracking_client

if TYPE_CHECKING:
    from mlops.settings import Settings

CHALLENGER = "challenger"
CHAMPION = "champion"


@dataclass(frozen=True)
class VersionInfo:
    """A registered version with its run's metrics and tags (MLflow's own tags left out)."""

    job: str
    version: int
    run_id: str | None
    aliases: tuple[str, ...]
    created_at: datetime
    status: str
    source: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def _registered(client, job: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(job)
    except MlflowException as exc:
        if tracking_client.missing(exc):
            raise NotReadyError(
                f"no model is registered as {job!r}", f"train one first: `mlops train {job}`"
            ) from None
        raise


def aliases(settings: Settings, job: str) -> dict[str, int]:
    """The job's aliases and the versions they point at (empty when nothing is registered)."""
    try:
        model = _registered(tracking_client.client(settings), job)
    except NotReadyError:
        return {}
    return {alias: int(version) for alias, version in (model.aliases or {}).items()}


def champion_version(settings: Settings, job: str) -> int | None:
    """The version ``champion`` points at, or None."""
    return aliases(settings, job).get(CHAMPION)


def model_version(client, job: str, ref: int | str):
    from mlflow.exceptions import MlflowException

    model = _registered(client, job)
    text = str(ref)
    version: int | None
    if text.isdigit():
        version = int(text)
    else:
        version = (model.aliases or {}).get(text)
        if version is None:
            hint = (
                f"run `mlops models promote {job}` first"
                if text == CHAMPION
                else f"run `mlops train {job}` first"
            )
            raise NotReadyError(f"no version of {job!r} has the alias {text!r}", hint)
    try:
        return client.get_model_version(job, str(version))
    except MlflowException as exc:
        if tracking_client.missing(exc):
            raise InputError(
                f"{job!r} has no version {version}", "see `mlops models list`"
            ) from None
        raise


def _version_info(client, job: str, mv, alias_map: dict[str, Any]) -> VersionInfo:
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    if mv.run_id:
        run = client.get_run(mv.run_id)
        metrics = dict(run.data.metrics)
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    version = int(mv.version)
    return VersionInfo(
        job=job,
        version=version,
        run_id=mv.run_id,
        aliases=tuple(sorted(a for a, v in alias_map.items() if int(v) == version)),
        created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).replace(
            tzinfo=None, microsecond=0
        ),
        status=str(mv.status),
        source=str(mv.source),
        metrics=metrics,
        tags=tags,
    )


def version_info(settings: Settings, job: str, ref: int | str) -> VersionInfo:
    """One version (a number or an alias) with its run's metrics and tags."""
    client = tracking_client.client(settings)
    mv = model_version(client, job, ref)
    return _version_info(client, job, mv, _registered(client, job).aliases or {})


def list_versions(settings: Settings, job: str) -> list[VersionInfo]:
    """Every registered version of the job, newest first (empty when none)."""
    try:
        client = tracking_client.client(settings)
        model = _registered(client, job)
    except NotReadyError:
        return []
    alias_map = model.aliases or {}
    found = client.search_model_versions(f"name = '{job}'")
    infos = [_version_info(client, job, mv, alias_map) for mv in found]
    return sorted(infos, key=lambda info: info.version, reverse=True)


def set_alias(settings: Settings, job: str, alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` of the job's registered model."""
    client = tracking_client.client(settings, write=True)
    model_version(client, job, version)
    client.set_registered_model_alias(job, alias, str(int(version)))


def delete_alias(settings: Settings, job: str, alias: str) -> None:
    """Remove ``alias`` from the job's registered model; a missing alias is fine."""
    from mlflow.exceptions import MlflowException

    try:
        tracking_client.client(settings, write=True).delete_registered_model_alias(job, alias)
    except MlflowException as exc:
        if not tracking_client.missing(exc):
            raise


def version_number(settings: Settings, job: str, alias_or_version: int | str) -> int:
    """The version number an alias points at (a number is checked and returned)."""
    return int(model_version(tracking_client.client(settings), job, alias_or_version).version)
