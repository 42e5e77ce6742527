"""Is a Kafka broker answering? One Metadata request (v4) over a plain socket.

Kafka 4.x dropped Metadata v0-v3; v4 is the oldest version it serves and the last one
without the flexible (tagged-field) encoding, so it stays a few lines of `struct`.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

_METADATA = 3
_VERSION = 4
_CORRELATION_ID = 0x1ED6E5
_CLIENT_ID = b"ledger-infra"


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]

    @property
    def ready(self) -> bool:
        """A broker is registered and a controller is known."""
        return bool(self.brokers) and self.controller_id >= 0


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = sock.recv(size - len(buffer))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        buffer.extend(chunk)
    return bytes(buffer)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def int16(self) -> int:
        (value,) = struct.unpack_from(">h", self.data, self.offset)
        self.offset += 2
        return int(value)

    def int32(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.offset)
        self.offset += 4
        return int(value)

    def string(self) -> str | None:
        length = self.int16()
        if length < 0:
            return None
        value = self.data[self.offset : self.offset + length].decode()
        self.offset += length
        return value


def metadata(host: str, port: int, timeout: float = 3.0) -> ClusterInfo:
    """Send a Metadata v4 request for no topic; raise OSError/ValueError if not Kafka."""
    header = struct.pack(">hhih", _METADATA, _VERSION, _CORRELATION_ID, len(_CLIENT_ID))
    body = struct.pack(">i?", 0, False)  # an empty topic list, no auto-creation
    message = header + _CLIENT_ID + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(message)) + message)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        if not 0 < size < 1 << 24:
            raise ValueError(f"not a Kafka response (size {size})")
        reader = _Reader(_recv_exactly(sock, size))
    if reader.int32() != _CORRELATION_ID:
        raise ValueError("not a Kafka response (correlation id)")
    reader.int32()  # throttle_time_ms
    brokers = []
    for _ in range(reader.int32()):
        node_id = reader.int32()
        broker_host = reader.string() or ""
        broker_port = reader.int32()
        reader.string()  # rack
        brokers.append((node_id, broker_host, broker_port))
    cluster_id = reader.string()
    controller_id = reader.int32()
    return ClusterInfo(cluster_id, controller_id, tuple(brokers))


def answers(host: str, port: int, timeout: float = 3.0) -> ClusterInfo | None:
    """The broker's metadata, or None if nothing Kafka-like answers on host:port."""
    try:
        return metadata(host, port, timeout)
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        return None
