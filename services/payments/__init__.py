"""Payments: customer accounts; charges orders whose stock is reserved, refunds cancelled ones."""
