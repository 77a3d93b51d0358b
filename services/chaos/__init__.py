"""`make chaos` (`python -m services.chaos`): the shop under load while processes are killed, the
broker is restarted and connections are cut and slowed; afterwards nothing may be lost, stuck or
applied twice (`shop check`, strict), and a JSON report says what happened (docs/shop.md)."""
