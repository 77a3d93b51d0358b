"""The test kit: run a service's handlers against a private broker, inject the faults events bring,
and wait on what it publishes instead of sleeping (docs/testing.md).

- `Harness(service, ..., broker=None, faults=None)`: `send`, `published`, `events`, `count`,
  `settled`, `until`;
- `Faults(duplicate=..., reorder=..., redeliver_after_success=..., republish=...,
  refuse_publishes=seconds, slow_handler=...)`;
- the pytest plugin (`tidings.testing.plugin`, registered by entry point): the `tidings_harness`
  fixture, a factory whose harnesses are closed after the test.
"""

from tidings.testing.faults import Faults
from tidings.testing.harness import Harness

__all__ = ["Faults", "Harness"]
