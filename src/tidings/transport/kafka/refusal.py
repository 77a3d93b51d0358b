"""What Kafka refuses for good, and which record of a batch it was."""

from __future__ import annotations

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from tidings.errors import PublishError

TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)  # refused for good: sending again cannot succeed


class RecordRefused(PublishError):
    """Record `index` of a `send` was refused for good (`reason`); those before it may be accepted."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"Kafka refused record {index} for good: {reason}")
        self.index = index
        self.reason = reason
