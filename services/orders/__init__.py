"""Orders: the HTTP API customers use, the catalog, and the order saga (confirm, cancel, deadline)."""
