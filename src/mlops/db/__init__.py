"""Storage: engines, the store's schema and its Alembic migrations."""
