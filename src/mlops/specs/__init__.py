"""Job and feature specs (built from the feature repository) and their sync to the store."""

from mlops.specs.features import ALL, FeatureSpec, InputSpec, JobSpec, LabelSpec

__all__ = ["ALL", "FeatureSpec", "InputSpec", "JobSpec", "LabelSpec"]
