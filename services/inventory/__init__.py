"""Inventory: stock per sku, reservations per order (all lines or none), release and commit."""
