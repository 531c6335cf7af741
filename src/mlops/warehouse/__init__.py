"""The warehouse: raw tables, the synthetic generator, the loader and the feature views."""
