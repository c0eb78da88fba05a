# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Serial link model: one direction of a UART, byte by byte on simulated time.

Each byte takes 10 bit times on the wire (8N1), so throughput is limited by
the baud rate and bytes queue behind each other; a fixed latency (USB-serial
bridge buffering) is added on top. A byte is lost with probability
``drop_rate`` or has one random bit flipped with probability
``corrupt_rate``; the draws come from the link's own seeded generator, so a
run is repeatable for a seed.

    link = SerialLink(LinkParams(baud=115200, drop_rate=1e-3), seed=7)
    link.write(frame_bytes, t_s=0.010)
    got = link.read(t_s=0.020)      # bytes that have arrived by then

Compiled with the simulator's other per-tick models in the ``compiled``
firmware mode (sim/lockstep.py; the C types are in link.pxd).
"""

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkParams:
    baud: int = 115200
    latency_s: float = 0.001
    drop_rate: float = 0.0
    corrupt_rate: float = 0.0

    def validate(self):
        if not self.baud > 0:
            raise ValueError("link.baud = %r: must be positive" % self.baud)
        if self.latency_s < 0:
            raise ValueError("link.latency_s = %r: must not be negative" % self.latency_s)
        for key in ("drop_rate", "corrupt_rate"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError("link.%s = %r: must be a probability in 0..1" % (key, getattr(self, key)))
        return self


class SerialLink:
    """One direction of a serial line: ``write`` at a time, ``read`` what has arrived."""

    def __init__(self, params=None, seed=0):
        self.params = (params or LinkParams()).validate()
        self._rng = random.Random(seed)
        self._byte_s = 10.0 / self.params.baud
        self._line_free_s = 0.0
        self._in_flight = deque()  # (arrival_s, byte)
        self.bytes_sent = 0
        self.bytes_dropped = 0
        self.bytes_corrupted = 0

    def write(self, data, t_s):
        p = self.params
        rnd = self._rng.random
        t_wire_s = max(t_s, self._line_free_s)
        for b in bytes(data):
            t_wire_s += self._byte_s
            self.bytes_sent += 1
            if p.drop_rate and rnd() < p.drop_rate:
                self.bytes_dropped += 1
                continue
            if p.corrupt_rate and rnd() < p.corrupt_rate:
                b ^= 1 << self._rng.randrange(8)
                self.bytes_corrupted += 1
            self._in_flight.append((t_wire_s + p.latency_s, b))
        self._line_free_s = t_wire_s

    def has_in_flight(self):
        """Whether any byte is still on its way (the world asks every tick before reading)."""
        return len(self._in_flight) != 0

    def read(self, t_s):
        """All bytes that have arrived by ``t_s``, in order."""
        q = self._in_flight
        if not q or q[0][0] > t_s:
            return b""
        out = bytearray()
        while q and q[0][0] <= t_s:
            out.append(q.popleft()[1])
        return bytes(out)

    @property
    def backlog_s(self):
        """How far the line's transmit queue reaches past the last write."""
        return self._line_free_s
