"""Feature specs as code (the runbook's shared/ml/features.ts) and their sync to the store."""

from mlops.specs.features import JOBS, FeatureSpec, JobSpec, get_job, resolve_jobs

__all__ = ["JOBS", "FeatureSpec", "JobSpec", "get_job", "resolve_jobs"]
