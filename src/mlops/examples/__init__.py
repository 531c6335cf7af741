"""Feature repositories shipped with mlops; ``marketplace`` (the runbook's churn, upsell and
ETA) is the default repository."""
