"""The runbook's delivery marketplace, as a feature repository: its Python files (heuristics,
the warehouse contract, the business endpoints) import each other relatively."""
