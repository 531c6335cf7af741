"""The warehouse: the repository's contract, the loader, bulk writes and the feature views."""
