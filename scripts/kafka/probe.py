#!/usr/bin/env python3
"""Tell whether a Kafka broker really serves requests (stdlib only).

Usage: probe.py [HOST:PORT] [--timeout SECONDS]

Sends ApiVersions (v0, which every broker answers) and then a Metadata
request (no topics) and checks that the broker lists at least one live
broker.  An open port is not enough: a KRaft broker accepts connections
before it has caught up with the metadata log.  Exit status 0 = ready,
1 = not ready (reason on stderr).  Used by scripts/kafka.sh.
"""

import socket
import struct
import sys

API_VERSIONS = 18
METADATA = 3


def _request(sock, api_key, version, correlation_id, body=b""):
    client_id = b"tidings-probe"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv(sock, 4))[0]
    data = _recv(sock, size)
    (cid,) = struct.unpack_from(">i", data, 0)
    if cid != correlation_id:
        raise RuntimeError(f"correlation id mismatch: {cid} != {correlation_id}")
    return data, 4


def _recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return buf


def _string(data, off):
    (n,) = struct.unpack_from(">h", data, off)
    off += 2
    if n < 0:
        return None, off
    return data[off : off + n].decode(), off + n


def probe(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        # ApiVersions v0: empty body; response: error_code, [api_key, min, max]
        data, off = _request(sock, API_VERSIONS, 0, 1)
        (err, count) = struct.unpack_from(">hi", data, off)
        if err != 0:
            raise RuntimeError(f"ApiVersions error code {err}")
        off += 6
        versions = {}
        for _ in range(count):
            key, lo, hi = struct.unpack_from(">hhh", data, off)
            off += 6
            versions[key] = (lo, hi)
        if METADATA not in versions:
            raise RuntimeError("broker does not offer Metadata")
        lo, hi = versions[METADATA]
        v = max(lo, 4)
        if v > min(hi, 8):  # v4..v8 share the non-flexible layout parsed below
            raise RuntimeError(f"no usable Metadata version (broker: {lo}..{hi})")
        # Metadata v4-v8: topics=[] (none), allow_auto_topic_creation=false,
        # v8 adds include_cluster/topic_authorized_operations (booleans)
        body = struct.pack(">ib", 0, 0)
        if v >= 8:
            body += struct.pack(">bb", 0, 0)
        data, off = _request(sock, METADATA, v, 2, body)
        off += 4  # throttle_time_ms
        (nbrokers,) = struct.unpack_from(">i", data, off)
        off += 4
        brokers = []
        for _ in range(nbrokers):
            (node_id,) = struct.unpack_from(">i", data, off)
            off += 4
            bhost, off = _string(data, off)
            (bport,) = struct.unpack_from(">i", data, off)
            off += 4
            _rack, off = _string(data, off)
            brokers.append((node_id, bhost, bport))
        cluster_id, off = _string(data, off)
        if not brokers:
            raise RuntimeError("broker answers but lists no live brokers yet")
        return cluster_id, brokers


def main(argv):
    addr = "127.0.0.1:9092"
    timeout = 3.0
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--timeout":
            timeout = float(args.pop(0))
        else:
            addr = a
    host, _, port = addr.rpartition(":")
    try:
        cluster_id, brokers = probe(host or "127.0.0.1", int(port), timeout)
    except (OSError, RuntimeError, struct.error) as exc:
        print(f"kafka not ready at {addr}: {exc}", file=sys.stderr)
        return 1
    desc = ", ".join(f"{n}@{h}:{p}" for n, h, p in brokers)
    print(f"kafka ready at {addr}: cluster {cluster_id}, brokers {desc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
