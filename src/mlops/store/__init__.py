"""The feature store (the runbook's server/services/ml/feature-store.ts): ingestion from the
warehouse views, online reads and point-in-time historical reads."""
