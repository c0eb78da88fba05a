"""Benchmarks behind docs/benchmarks.md: ``opensteady bench SUITE``.

    opensteady bench protocol          # frame sizes, parser speed, heap per frame, link budget
    opensteady bench protocol --json   # the same as one JSON object
    opensteady bench firmware 5000     # one control tick on the MicroPython unix port
    opensteady bench firmware 5000 --foc   # the same with the closed-loop drive on all three axes
    opensteady bench firmware --instructions [--foc]   # machine instructions per tick (callgrind)
    opensteady bench vision            # MediaPipe / Haar latency and detection rates
    opensteady bench sim --repeat 2    # realtime factors, tracking and jitter vs the baseline
    opensteady bench host --markdown   # end-to-end capture-to-bytes latency
    opensteady bench faults            # fuzzed streams, hostile frames, a frozen child, a NaN device
    opensteady bench gestures --csv F  # gesture recall and confusion on labelled hands (--loro: retrain)
    opensteady bench apps              # stream latency (captured -> served), start-up to first setpoint

Arguments after the suite name go to that suite (``opensteady bench vision --help``).

Each suite prints the figures that docs/benchmarks.md records. Timings are
medians over repeated runs; the machine may be busy, so compare figures
taken in the same run.
"""

import argparse
import json
import statistics
import time

SUITES = ("protocol", "firmware", "vision", "sim", "host", "faults", "gestures", "apps")


def add_arguments(parser):
    parser.add_argument("suite", choices=SUITES, help="which benchmark suite to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for that suite")


def _protocol_main(argv):
    parser = argparse.ArgumentParser(prog="opensteady bench protocol")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per timing (median is reported)")
    args = parser.parse_args(argv)
    figures = bench_protocol(args.repeat)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print("%-65s %s" % (key, value))
    return 0


def _firmware_main(argv):
    """Run firmware/offboard/bench_tick.py on the MicroPython unix port (arguments: ticks, --foc, ...)."""
    import os
    import subprocess

    from opensteady.sim.micropython_vm import VM_PATH, binary

    parser = argparse.ArgumentParser(prog="opensteady bench firmware", description=_firmware_main.__doc__)
    parser.add_argument("ticks", nargs="?", type=int, default=5000, help="control ticks to time (default 5000)")
    parser.add_argument("--foc", action="store_true", help="every axis on the closed-loop drive (sensor + FOC)")
    parser.add_argument("--handle-imu", action="store_true",
                        help="a second IMU on the handle (the handle-rate feed-forward runs)")
    parser.add_argument("--torque-ff", action="store_true",
                        help="the handle IMU and the torque feed-forward (torque_ff_mu 0.005; acts on --foc axes)")
    parser.add_argument("--instructions", action="store_true",
                        help="instead: machine instructions per tick, counted by valgrind's callgrind "
                             "(firmware/offboard/bench_instr.py; load-independent)")
    parser.add_argument("--tree", default=str(VM_PATH),
                        help="with --instructions: the folder holding the firmware/ to measure (default: this one)")
    args = parser.parse_args(argv)
    ticks = args.ticks
    foc = args.foc
    if ticks < 1:
        parser.error("ticks must be at least 1, got %d" % ticks)
    if args.instructions:
        n = firmware_instructions_per_tick(os.path.abspath(args.tree), foc)
        print(json.dumps({"drive": "foc" if foc else "open_loop", "instructions_per_tick": round(n)}))
        return 0
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % VM_PATH)
    code = "from firmware.offboard import bench_tick; bench_tick.main(%d, %s, %s, %s)" % (
        ticks, foc, args.handle_imu, args.torque_ff)
    cmd = [binary(), "-X", "heapsize=4M", "-c", code]
    return subprocess.run(cmd, env=env, cwd=str(VM_PATH)).returncode


def _callgrind_instructions(tree, ticks, foc):
    """Instructions (callgrind's Ir) of one unix-port process running bench_instr.count(ticks, foc) in ``tree``."""
    import os
    import shutil
    import subprocess
    import tempfile

    from opensteady.sim.micropython_vm import binary

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("opensteady bench firmware --instructions needs valgrind (e.g. apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        code = "from firmware.offboard import bench_instr; bench_instr.count(%d, %s)" % (ticks, foc)
        subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=" + out, binary(), "-X", "heapsize=4M",
                        "-c", code], cwd=tree, check=True, capture_output=True,
                       # the `micropython` command starts in CPython: a fixed hash seed keeps its start-up (and
                       # so the addresses the VM's lookup caches see) the same from run to run
                       env=dict(os.environ, MICROPYPATH=tree, PYTHONHASHSEED="0"))
        with open(out) as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
    raise RuntimeError("callgrind wrote no instruction total")


def firmware_instructions_per_tick(tree, foc=False, lo=1000, hi=3000):
    """Instructions one firmware tick costs on the unix port: two callgrind runs of ``hi`` and ``lo`` ticks,
    the difference over ``hi - lo`` (boot, imports and exit cancel out)."""
    return (_callgrind_instructions(tree, hi, foc) - _callgrind_instructions(tree, lo, foc)) / (hi - lo)


# --- protocol ----------------------------------------------------------------------

_MPY_THROUGHPUT = """
import time, gc, json
from opensteady.firmware import protocol as p
data = bytes.fromhex(%r)
parser = p.Parser()
n = len(data)
def run():
    got = 0
    j = 0
    while j < n:
        if parser.feed(data[j]) >= 0:
            got += 1
        j += 1
    return got
run()
times = []
for _ in range(%d):
    t0 = time.ticks_us()
    got = run()
    times.append(time.ticks_diff(time.ticks_us(), t0))
times.sort()
gc.collect()
before = gc.mem_alloc()
frames = run()
heap = gc.mem_alloc() - before
print(json.dumps({"us": times[len(times) // 2], "frames": frames, "heap_bytes": heap}))
"""


def _setpoint_stream(n_frames):
    from opensteady.firmware import protocol as p

    out = bytearray()
    for i in range(n_frames):
        out += p.encode(p.MSG_SETPOINT, i & 0xFF, p.pack(p.MSG_SETPOINT, 0x0B, (i * 37) % 30000 - 15000, -250, 0))
    return bytes(out)


def simulate_link(setpoint_hz, seconds=5.0, baud=115200, telemetry_hz=50, drop_rate=0.0):
    """Stream setpoints and telemetry through the simulator's UART model (one
    line each way, 8N1, 1 ms bridge latency) and parse both ends with the real
    Parser, polled every 1 ms as the firmware does. Returns delivered rates and
    the worst setpoint latency."""
    from opensteady.firmware import protocol as p
    from opensteady.sim.link import LinkParams, SerialLink

    down = SerialLink(LinkParams(baud=baud, drop_rate=drop_rate), seed=1)  # host -> device
    up = SerialLink(LinkParams(baud=baud, drop_rate=drop_rate), seed=2)  # device -> host
    dev_parser, host_parser = p.Parser(), p.Parser()
    telemetry = p.encode(p.MSG_TELEMETRY, 0, p.pack(p.MSG_TELEMETRY, *([0] * len(p.FIELDS[p.MSG_TELEMETRY]))))
    sent_at = {}
    latencies = []
    n_setpoints = n_telemetry = 0
    next_sp, next_tm, seq = 0.0, 0.0, 0
    steps = int(seconds * 1000)
    for k in range(steps + 50):
        t = k / 1000.0
        while next_sp <= t and next_sp < seconds:
            sent_at[seq] = next_sp
            down.write(p.encode(p.MSG_SETPOINT, seq & 0xFF, p.pack(p.MSG_SETPOINT, 0x0B, seq & 0x7FFF, 0, 0)), next_sp)
            seq += 1
            next_sp += 1.0 / setpoint_hz
        if next_tm <= t and next_tm < seconds:
            up.write(telemetry, t)
            next_tm += 1.0 / telemetry_hz
        for b in down.read(t):
            m = dev_parser.feed(b)
            while m >= 0:
                sp_seq = p.get_i16(dev_parser.buf, p.PAYLOAD_OFFSET + 1)
                latencies.append(t - sent_at[sp_seq])
                n_setpoints += 1
                m = dev_parser.flush()
        for b in up.read(t):
            if host_parser.feed(b) >= 0:
                n_telemetry += 1
    latencies.sort()
    return {
        "offered_hz": setpoint_hz,
        "delivered_hz": round(n_setpoints / seconds, 1),
        "telemetry_hz": round(n_telemetry / seconds, 1),
        "latency_ms_p50": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
        "latency_ms_max": round(1000 * latencies[-1], 2) if latencies else None,
    }


def bench_protocol(repeat):
    from opensteady.firmware import protocol as p
    from opensteady.sim.micropython_vm import run_json as micropython_json

    setpoint = p.encode(p.MSG_SETPOINT, 0, p.pack(p.MSG_SETPOINT, 0, 0, 0, 0))
    telemetry_len = p.SIZES[p.MSG_TELEMETRY] + p.OVERHEAD
    heartbeat_len = p.SIZES[p.MSG_HEARTBEAT] + p.OVERHEAD
    stream = _setpoint_stream(2000)

    times = []
    for _ in range(repeat):
        parser = p.Parser()
        t0 = time.perf_counter()
        frames = 0
        for b in stream:
            if parser.feed(b) >= 0:
                frames += 1
        times.append(time.perf_counter() - t0)
    assert frames == 2000
    cpython_bps = len(stream) / statistics.median(times)

    mpy = micropython_json(_MPY_THROUGHPUT % (stream.hex(), repeat))
    assert mpy["frames"] == 2000
    mpy_bps = len(stream) / (mpy["us"] * 1e-6)

    # Link budget at 115200 baud, 8N1: 10 bits on the wire per byte.
    baud = 115200
    bytes_per_s = baud / 10
    telemetry_hz = 50
    # Host -> device carries setpoints (plus a heartbeat only when idle, so none
    # while streaming). Device -> host carries 50 Hz telemetry; a UART is full
    # duplex, so that does not share the setpoint direction, but we also give
    # the half-duplex figure (RS-485, or a shared radio link) for comparison.
    full_duplex_hz = bytes_per_s / len(setpoint)
    half_duplex_hz = (bytes_per_s - telemetry_hz * telemetry_len) / len(setpoint)
    return {
        "setpoint_frame_bytes": len(setpoint),
        "telemetry_frame_bytes": telemetry_len,
        "heartbeat_frame_bytes": heartbeat_len,
        "parser_bytes_per_s_cpython": round(cpython_bps),
        "parser_bytes_per_s_micropython_unix": round(mpy_bps),
        "parser_heap_bytes_per_frame_micropython": mpy["heap_bytes"] / mpy["frames"],
        "link_115200_setpoint_hz_full_duplex_with_50hz_telemetry": round(full_duplex_hz),
        "link_115200_setpoint_hz_half_duplex_with_50hz_telemetry": round(half_duplex_hz),
        "link_sim_115200": [simulate_link(hz) for hz in (200, 400, 800, 820, 850)],
        "parser_share_of_1ms_tick_at_200hz_setpoints_us_micropython_unix": round(
            200 * len(setpoint) / mpy_bps * 1e6 / 1000, 2
        ),
    }


def run(args):
    if args.suite == "protocol":
        return _protocol_main(args.args)
    if args.suite == "firmware":
        return _firmware_main(args.args)
    import importlib

    module = {"vision": "opensteady.vision.bench", "sim": "opensteady.host.simbench", "host": "opensteady.host.track_bench",
              "faults": "opensteady.host.faultbench",
              "gestures": "opensteady.vision.gesture_bench",
              "apps": "opensteady.host.apps_bench"}[args.suite]
    return int(importlib.import_module(module).main(args.args) or 0)
