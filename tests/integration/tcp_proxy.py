"""The TCP proxy tests put in front of a broker to cut, slow or refuse its connections: the
project's one proxy, `services.chaos.proxy.TcpProxy` (the chaos run uses the same)."""

from services.chaos.proxy import TcpProxy

__all__ = ["TcpProxy"]
