"""Why a TLS connection to Kafka failed: aiokafka logs the handshake error and raises only
"Unable to bootstrap", so a refused certificate would read like a broker that is down."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from tidings.transport.kafka.config import KafkaConfig

HANDSHAKE_WITHIN = 5.0
"""Seconds the diagnostic handshake may take."""


async def handshake_failure(config: KafkaConfig) -> str:
    """`"; TLS: <reason>"` if a TLS handshake with the first bootstrap broker fails, else `""`."""
    if not config.security_protocol.endswith("SSL"):
        return ""
    context = config.client_options()["ssl_context"]
    host, _, port = config.bootstrap[0].rpartition(":")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port), ssl=context), HANDSHAKE_WITHIN
        )
    except ssl.SSLCertVerificationError as error:
        return f"; TLS: certificate verify failed: {error.verify_message}"
    except ssl.SSLError as error:
        return f"; TLS: {error.reason or error}"
    except (OSError, ValueError, TimeoutError):
        return ""
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return ""
