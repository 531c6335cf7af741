"""Transitional: the bundled example's raw tables moved to its ``warehouse.py``
(``mlops.examples.marketplace.warehouse``). Only serving/profiles.py and
monitoring/panel_distributions.py still import them from here, until they are made generic
(issue 14); delete this module then. New code reads the repository's contract
(``mlops.warehouse.contract``)."""

from __future__ import annotations

from importlib import import_module
from typing import Any


def __getattr__(name: str) -> Any:
    return getattr(import_module("mlops.examples.marketplace.warehouse"), name)
