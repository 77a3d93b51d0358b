"""Notifications: one message to the customer per settled (confirmed or cancelled) order."""
