"""mlops: ML operations end to end, from warehouse views to served predictions."""

__version__ = "0.1.0"
