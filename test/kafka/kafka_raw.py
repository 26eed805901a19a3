"""Raw Kafka frames for the listener's tests (no client library): InitProducerId, Produce with a
hand-built RecordBatch v2 (CRC-32C included), Metadata and Fetch, over a blocking socket."""
import socket
import struct
import time

_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc ^ 0xffffffff


def varint(v):
    v = (v << 1) ^ (v >> 63)  # zigzag
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def kstring(s):
    if s is None:
        return struct.pack('>h', -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack('>h', len(b)) + b


def record_batch(values, producer_id=-1, epoch=-1, base_sequence=-1, timestamp=None):
    ts = int(time.time() * 1000) if timestamp is None else timestamp
    records = b''
    for i, v in enumerate(values):
        body = b'\x00' + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = struct.pack('>hiqqqhii', 0, len(values) - 1, ts, ts, producer_id, epoch, base_sequence,
                            len(values)) + records
    crc = crc32c(after_crc)
    after_length = struct.pack('>ibI', -1, 2, crc) + after_crc
    return struct.pack('>qi', 0, len(after_length)) + after_length


class Conn:
    def __init__(self, port, host='127.0.0.1', timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.corr = 0

    def close(self):
        self.sock.close()

    def send(self, key, version, body):
        self.corr += 1
        payload = struct.pack('>hhi', key, version, self.corr) + kstring('raw-test') + body
        self.sock.sendall(struct.pack('>i', len(payload)) + payload)
        return self.corr

    def recv(self):
        head = self._read(4)
        if head is None:
            return None
        (size,) = struct.unpack('>i', head)
        body = self._read(size)
        if body is None:
            return None
        return body[4:]  # past the correlation id

    def _read(self, n):
        buf = b''
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def request(self, key, version, body):
        self.send(key, version, body)
        return self.recv()

    def init_producer_id(self, transactional_id=None, version=1):
        r = self.request(22, version, kstring(transactional_id) + struct.pack('>i', 60000))
        _throttle, error, pid, epoch = struct.unpack('>ihqh', r)
        return error, pid, epoch

    def produce(self, topic, partition, batch, acks=-1, version=7, transactional_id=None):
        body = kstring(transactional_id) + struct.pack('>hi', acks, 30000) + struct.pack('>i', 1) + kstring(topic) + \
            struct.pack('>ii', 1, partition) + struct.pack('>i', len(batch)) + batch
        if acks == 0:
            self.send(0, version, body)
            return None
        r = self.recv() if self.send(0, version, body) else None
        if r is None:
            return None
        pos = 4  # topics count
        (n,) = struct.unpack_from('>h', r, pos)
        pos += 2 + n + 4  # name, partitions count
        _index, error, base = struct.unpack_from('>ihq', r, pos)
        return error, base


def fetch_v4_body(topic, partition, offset, max_wait_ms=10000, min_bytes=1, max_bytes=1 << 20):
    return struct.pack('>iiiib', -1, max_wait_ms, min_bytes, max_bytes, 0) + struct.pack('>i', 1) + kstring(topic) + \
        struct.pack('>i', 1) + struct.pack('>iqi', partition, offset, max_bytes)


def fetch_v4_first_partition(r):
    """(error, high watermark, records bytes length) of the first partition of a Fetch v4 response."""
    pos = 4  # throttle
    pos += 4  # topics count
    (n,) = struct.unpack_from('>h', r, pos)
    pos += 2 + n + 4
    _p, error, hw, _lso = struct.unpack_from('>ihqq', r, pos)
    pos += 4 + 2 + 8 + 8
    (aborted,) = struct.unpack_from('>i', r, pos)
    pos += 4 + max(aborted, 0) * 16
    (size,) = struct.unpack_from('>i', r, pos)
    return error, hw, size
