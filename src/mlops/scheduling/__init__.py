"""Scheduling: the task table built from the job specs (tasks), the built-in scheduler with
its database leases and run history, and the Airflow and crontab exports of the same table."""
