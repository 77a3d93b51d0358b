"""Tidings' own Alembic migrations (version table `tidings_alembic_version`), applied by `Store.open`."""
