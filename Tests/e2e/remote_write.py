"""Hand-made Prometheus remote-write 1.0 bodies for the end-to-end tests.

``write_request`` encodes a ``prometheus.WriteRequest`` (protobuf, written
out by hand: no generated code is needed for four small messages) and
``snappy_block`` wraps bytes in the snappy block format. The block format
allows a stream made of literals only, which every decoder reads; that is
all a test needs, so there is no compressor here.

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // timestamp in ms
"""

from __future__ import annotations

import struct

_VARINT, _FIXED64, _LENGTH_DELIMITED = 0, 1, 2


def uvarint(n: int) -> bytes:
    """Protobuf's (and snappy's length header's) base-128 varint."""
    if n < 0:
        n += 1 << 64  # int64 as protobuf writes it
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return uvarint(field << 3 | wire_type)


def _message_field(field: int, payload: bytes) -> bytes:
    return _key(field, _LENGTH_DELIMITED) + uvarint(len(payload)) + payload


def write_request(series: list[tuple[dict[str, str], list[tuple[float, int]]]]) -> bytes:
    """``[(labels with __name__, [(value, timestamp ms), ...]), ...]`` as a WriteRequest; labels sorted by name."""
    body = bytearray()
    for labels, samples in series:
        ts = bytearray()
        for name in sorted(labels):
            label = _message_field(1, name.encode()) + _message_field(2, labels[name].encode())
            ts += _message_field(1, label)
        for value, timestamp_ms in samples:
            sample = _key(1, _FIXED64) + struct.pack("<d", value) + _key(2, _VARINT) + uvarint(timestamp_ms)
            ts += _message_field(2, sample)
        body += _message_field(1, bytes(ts))
    return bytes(body)


def snappy_block(data: bytes) -> bytes:
    """``data`` in the snappy block format: the uncompressed length, then literal elements only."""
    out = bytearray(uvarint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start:start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        out += chunk
    return bytes(out)
