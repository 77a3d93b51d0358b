"""Transports: the broker port (`base`) and its adapters, chosen by `connect(url)`."""

from tidings.transport.base import (
    AlreadySettled,
    Capabilities,
    DeadLetter,
    Delivery,
    Subscription,
    Transport,
    connect,
)

__all__ = ["AlreadySettled", "Capabilities", "DeadLetter", "Delivery", "Subscription", "Transport", "connect"]
