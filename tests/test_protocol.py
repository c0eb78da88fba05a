"""Wire protocol: golden vectors (from docs/protocol.md), round trips, damage
recovery (hypothesis), and the same checks on the real MicroPython VM."""

import binascii
import json
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensteady.firmware import protocol as p
from tests.micropython import ROOT, run_cpython_json, run_micropython_json


def golden_vectors():
    text = (ROOT / "docs" / "protocol.md").read_text()
    block = text.split("<!-- golden:begin -->")[1].split("<!-- golden:end -->")[0]
    rows = []
    for line in block.splitlines():
        m = re.match(r"\| (\w+) \| (\d+) \| (\[.*\]) \| `([0-9a-f ]+)` \|", line)
        if m:
            rows.append((m.group(1), int(m.group(2)), json.loads(m.group(3)), bytes.fromhex(m.group(4))))
    return rows


GOLDEN = golden_vectors()


def test_golden_table_covers_every_message():
    assert {name for name, *_ in GOLDEN} >= {
        "SETPOINT", "MODE", "HEARTBEAT", "VERSION_REQUEST", "VERSION", "TELEMETRY", "CONFIG_SET", "ACK", "FAULT",
        "LIGHT",
    }


@pytest.mark.parametrize("name,seq,fields,frame", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_encode_and_parse(name, seq, fields, frame):
    msg_id = getattr(p, "MSG_" + name)
    assert p.encode(msg_id, seq, p.pack(msg_id, *fields)) == frame
    # The CRC agrees with an independent implementation (CPython's binascii).
    assert int.from_bytes(frame[-2:], "little") == binascii.crc_hqx(frame[2:-2], 0xFFFF)
    parser = p.Parser()
    results = [parser.feed(b) for b in frame]
    assert results[:-1] == [-1] * (len(frame) - 1)
    assert results[-1] == msg_id and parser.seq == seq
    assert list(p.decode(msg_id, parser.payload())) == pytest.approx(fields)


def test_crc_check_value():
    assert p.crc16(b"123456789") == 0x29B1


def test_setpoint_frame_is_at_most_16_bytes():
    assert len(p.encode(p.MSG_SETPOINT, 0, p.pack(p.MSG_SETPOINT, 0, 0, 0, 0))) <= 16


def test_encode_rejects_oversized_payload():
    with pytest.raises(ValueError, match="payload too long"):
        p.encode(0x7F, 0, bytes(p.MAX_PAYLOAD + 1))


def test_decode_rejects_wrong_size_and_unknown_id():
    assert p.decode(p.MSG_SETPOINT, b"\x00" * 3) is None
    assert p.decode(0x7E, b"") is None


def test_saturation_of_int16_fields():
    assert p.sat_i16(1e9) == 32767 and p.sat_i16(-1e9) == -32768 and p.sat_i16(12.6) == 13


def test_length_guard_rejects_long_header_at_once():
    parser = p.Parser()
    for b in (p.SYNC0, p.SYNC1, p.MAX_PAYLOAD + 1):
        assert parser.feed(b) == -1
    assert parser.header_errors == 1
    # A valid frame right after is accepted with no waiting for the fake body.
    frame = GOLDEN[1][3]
    assert [parser.feed(b) for b in frame][-1] == p.MSG_MODE


def test_wrong_length_for_known_id_is_a_header_error():
    parser = p.Parser()
    for b in bytes([p.SYNC0, p.SYNC1, 3, 0, p.MSG_SETPOINT]):
        parser.feed(b)
    assert parser.header_errors == 1


def test_frame_hidden_inside_a_damaged_frame_is_recovered():
    # A truncated telemetry header claims its full payload; two real frames hide inside.
    a, b = GOLDEN[1][3], GOLDEN[0][3]
    stream = bytes([p.SYNC0, p.SYNC1, p.SIZES[p.MSG_TELEMETRY], 0, p.MSG_TELEMETRY]) + a + b + bytes(40)
    assert [frame for frame, _ in parse_all(stream)] == [a, b]


def test_unknown_message_id_is_rejected_at_the_header():
    parser = p.Parser()
    frame = p.encode(0x7E, 0, b"\x01")  # a valid CRC, but no such message
    assert [parser.feed(b) for b in frame + GOLDEN[1][3]][-1] == p.MSG_MODE
    assert parser.frames == 1 and parser.header_errors >= 1


# --- property tests -------------------------------------------------------------

FIELD_VALUES = {"B": st.integers(0, 255), "H": st.integers(0, 65535), "h": st.integers(-32768, 32767),
                "I": st.integers(0, 2**32 - 1), "f": st.floats(-1e6, 1e6, width=32)}


@st.composite
def messages(draw):
    msg_id = draw(st.sampled_from(sorted(p.FORMATS)))
    fields = [draw(FIELD_VALUES[c]) for c in p.FORMATS[msg_id][1:]]
    return msg_id, fields


def parse_all(stream, chunks=None):
    """Feed a byte stream (optionally in chunks) and return (frame bytes, msg_id) accepted."""
    parser = p.Parser()
    out = []
    for b in stream:
        m = parser.feed(b)
        while m >= 0:
            out.append((bytes(parser.buf[: parser.length + p.OVERHEAD]), m))
            m = parser.flush()
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=8), st.integers(0, 255))
def test_round_trip(msgs, seq0):
    frames = [p.encode(m, (seq0 + i) & 0xFF, p.pack(m, *f)) for i, (m, f) in enumerate(msgs)]
    got = parse_all(b"".join(frames))
    assert [f for f, _ in got] == frames
    for (frame, msg_id), (m, fields) in zip(got, msgs):
        assert msg_id == m
        decoded = p.decode(m, frame[p.PAYLOAD_OFFSET:-2])
        assert list(decoded) == pytest.approx(fields, nan_ok=True)


DAMAGE = st.sampled_from(["none", "none", "flip", "drop", "insert", "truncate"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(messages(), DAMAGE, st.integers(0, 10**6), st.binary(max_size=12)), min_size=1, max_size=10),
       st.data())
def test_damaged_streams_no_false_accepts_and_every_intact_frame_recovered(items, data):
    stream = bytearray()
    sent = []
    intact = []
    for i, ((msg_id, fields), damage, where, garbage) in enumerate(items):
        frame = bytearray(p.encode(msg_id, i & 0xFF, p.pack(msg_id, *fields)))
        k = where % len(frame)
        if damage == "flip":
            frame[k] ^= 1 << (where % 8) or 1
        elif damage == "drop":
            del frame[k]
        elif damage == "insert":
            frame.insert(k, where & 0xFF)
        elif damage == "truncate":
            del frame[k:]
        sent.append(bytes(frame))
        if damage == "none":
            intact.append(bytes(frame))
        stream += garbage + frame
    # the link goes on after the last frame: idle bytes at least one maximal frame long
    stream += bytes(p.MAX_FRAME)
    got = [f for f, _ in parse_all(bytes(stream))]
    originals = {p.encode(m, i & 0xFF, p.pack(m, *f)) for i, ((m, f), *_ ) in enumerate(items)}
    # zero false accepts: everything accepted is a frame that was really sent intact
    assert all(f in originals for f in got)
    # every intact frame is recovered, in order
    it = iter(got)
    assert all(any(f == g for g in it) for f in intact)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parser_never_raises_on_garbage(data):
    parser = p.Parser()
    for b in data:
        parser.feed(b)
        parser.flush()
    assert parser._n <= p.MAX_FRAME


# --- the same on the real MicroPython VM -------------------------------------------

def _parity_script():
    """A script that runs on MicroPython and CPython alike and prints a JSON summary."""
    import random

    rng = random.Random(1234)
    stream = bytearray()
    for i in range(300):
        msg_id = rng.choice(sorted(p.FORMATS))
        fields = []
        for c in p.FORMATS[msg_id][1:]:
            fields.append({"B": rng.randrange(256), "H": rng.randrange(65536), "h": rng.randrange(-32768, 32768),
                           "I": rng.randrange(2**32), "f": 0.5 * rng.randrange(-1000, 1000)}[c])
        frame = bytearray(p.encode(msg_id, i & 0xFF, p.pack(msg_id, *fields)))
        r = rng.random()
        if r < 0.15:
            frame[rng.randrange(len(frame))] ^= 0x10
        elif r < 0.25:
            del frame[rng.randrange(len(frame))]
        elif r < 0.3:
            stream += bytes(rng.randrange(256) for _ in range(rng.randrange(20)))
        stream += frame
    golden = [[getattr(p, "MSG_" + n), s, f, fr.hex()] for n, s, f, fr in GOLDEN]
    return (
        "import json\nfrom opensteady.firmware import protocol as p\n"
        "import binascii\n"
        "golden = %r\n"
        "stream = bytes.fromhex(%r)\n"
        "enc = [binascii.hexlify(p.encode(m, s, p.pack(m, *f))).decode() == fr for m, s, f, fr in golden]\n"
        "parser = p.Parser()\nframes = []\n"
        "for b in stream:\n"
        "    m = parser.feed(b)\n"
        "    while m >= 0:\n"
        "        frames.append([m, parser.seq, binascii.hexlify(parser.payload()).decode()])\n"
        "        m = parser.flush()\n"
        "print(json.dumps({'golden_ok': enc, 'frames': frames, 'crc_errors': parser.crc_errors,\n"
        "                  'header_errors': parser.header_errors, 'dropped': parser.dropped_bytes}))\n"
    ) % (golden, bytes(stream).hex())


def test_micropython_gives_the_same_results_as_cpython():
    script = _parity_script()
    on_mpy = run_micropython_json(script)
    on_cpy = run_cpython_json(script)
    assert all(on_mpy["golden_ok"]) and len(on_mpy["golden_ok"]) == len(GOLDEN)
    assert len(on_mpy["frames"]) > 150 and on_mpy["crc_errors"] > 0
    assert on_mpy == on_cpy


def test_parser_allocates_nothing_per_frame_on_micropython():
    frame = GOLDEN[0][3]
    result = run_micropython_json(
        "import gc, json\nfrom opensteady.firmware import protocol as p\n"
        "frame = bytes.fromhex(%r)\nparser = p.Parser()\nn = len(frame)\n"
        "def run(k):\n"
        "    got = 0\n"
        "    for _ in range(k):\n"
        "        j = 0\n"
        "        while j < n:\n"
        "            if parser.feed(frame[j]) >= 0:\n"
        "                got += 1\n"
        "            j += 1\n"
        "    return got\n"
        "run(50)\ngc.collect()\nbefore = gc.mem_alloc()\ngot = run(2000)\nafter = gc.mem_alloc()\n"
        "print(json.dumps({'frames': got, 'bytes': after - before}))" % frame.hex()
    )
    assert result["frames"] == 2000
    # a few bytes of GC bookkeeping at most; far below one byte per frame
    assert result["bytes"] < 64, result


def test_struct_layouts_are_little_endian_and_sized():
    for msg_id, fmt in p.FORMATS.items():
        assert fmt.startswith("<")
        assert p.SIZES[msg_id] == struct.calcsize(fmt) <= p.MAX_PAYLOAD
        assert len(p.FIELDS[msg_id]) == len(fmt) - 1
