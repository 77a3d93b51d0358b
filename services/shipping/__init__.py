"""Shipping: one shipment per confirmed order."""
