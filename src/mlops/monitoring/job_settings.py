"""A job's monitoring knobs: what its repository declares, unless the ``MLOPS_*`` setting of
the same name overrides it for that job (the loader checks the settings name jobs it has)."""

from __future__ import annotations

from mlops.runtime import Runtime


def auto_fallback(rt: Runtime, job: str) -> bool:
    """Whether a drift alert or guardrail breach trips the job to its heuristic."""
    return rt.settings.auto_fallback.get(job, rt.repo.job(job).auto_fallback)


def accuracy_floor(rt: Runtime, job: str) -> float | None:
    """The accuracy alert line (ROC-AUC floor of a binary job, MAE ceiling of a regression)."""
    return rt.settings.accuracy_floor.get(job, rt.repo.job(job).accuracy_floor)


def guardrail_margin(rt: Runtime, job: str) -> float:
    """How far the treatment's guardrail metric may regress from the control's."""
    guardrail = rt.repo.job(job).guardrail
    return rt.settings.guardrail_margin.get(job, guardrail.margin if guardrail else 0.0)
