"""What runs a service: routing, the delivery pipeline and its middleware, the unit of work,
the consume loop and the supervisor of background tasks (docs/decisions/0012).

None of these modules imports `tidings.service`: each receives its collaborators (transport,
store, registry, policy, telemetry) as arguments, so each can be read and tested alone.
"""
