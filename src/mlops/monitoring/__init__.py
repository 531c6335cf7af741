"""Monitoring: drift, accuracy, operations, A/B guardrails, alerts and the dashboard."""
