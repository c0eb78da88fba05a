"""Fault-injection benchmarks: ``opensteady bench faults`` (the long versions of tests/test_faults_*.py).

    opensteady bench faults                      # every suite, default sizes
    opensteady bench faults --streams 1000000    # the 10^6 fuzzed protocol streams
    opensteady bench faults --only fuzz,nan --json

Suites:

- ``fuzz``: random valid frames, damaged (bit flips, dropped, inserted and
  duplicated bytes, truncation) and mixed with garbage rich in sync bytes,
  into the protocol parser. Every accepted frame that was not sent intact is
  a false accept; CRC-16 lets a damaged candidate through with probability
  2^-16, so the expected count is (candidates that reached the CRC check) /
  65536. Also: exceptions (must be 0).
- ``hostile``: random well-formed frames with valid CRCs (every message id,
  random fields, config keys and values, modes) into the firmware running on
  its plant (firmware/offboard/plant.py): exceptions, NACKs, how often and
  how far a joint (where the plant really has it) crossed out of the limits
  in force, and the largest joint-command step in one tick.
- ``frozen``: the simulator's MicroPython firmware child is stopped with
  SIGSTOP; the time until the run ends with an error naming the cause.
- ``nan``: a MAVLink gimbal (pymavlink) sends NaN/inf/denormal attitudes with
  valid CRCs; messages refused, exceptions (must be 0).
- ``loss``: the track-crossing scenario (vision in the loop, the one host
  loop on the simulated rig) with 0, 1 and 5 % of bytes dropped in both
  directions, per seed: ``tracking_rms_frac``, its ratio to the lossless run
  of the same seed (goal at 1 %: <= 1.3), camera jitter, telemetry frames
  received, and faults (goal: no ``joint_limit``, at any rate).
"""

import argparse
import json
import math
import os
import random
import signal
import time

SUITES = ("fuzz", "hostile", "frozen", "nan", "loss")
LAG_TOL_DEG = 3.0  # the joint may trail the field this far at a limit (the motor's magnetic spring)


# --- fuzz ----------------------------------------------------------------------------

def _random_frame(rng, p, seq):
    msg_id = rng.choice(sorted(p.FORMATS))
    payload = bytes(rng.getrandbits(8) for _ in range(p.SIZES[msg_id]))
    return p.encode(msg_id, seq & 0xFF, payload)


def _damage(rng, frame):
    frame = bytearray(frame)
    kind = rng.randrange(6)
    k = rng.randrange(len(frame))
    if kind == 0:
        frame[k] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del frame[k]
    elif kind == 2:
        frame.insert(k, rng.getrandbits(8))
    elif kind == 3:
        del frame[k:]
    elif kind == 4:
        for _ in range(rng.randint(2, 6)):  # a burst
            frame[rng.randrange(len(frame))] = rng.getrandbits(8)
    else:
        frame[k:k] = frame[max(0, k - 5):k]  # a repeated run of bytes
    return bytes(frame)


def _garbage(rng, p, n):
    out = bytearray(rng.getrandbits(8) for _ in range(n))
    for _ in range(n // 4):  # sync pairs and plausible headers make the parser work hardest
        i = rng.randrange(len(out) + 1)
        out[i:i] = bytes((p.SYNC0, p.SYNC1, p.SIZES[rng.choice(sorted(p.SIZES))]))
    return bytes(out)


def bench_fuzz(streams, seed=0):
    """Feed ``streams`` damaged streams to one Parser each; count false accepts against CRC-16 theory."""
    from opensteady.firmware import protocol as p

    rng = random.Random(seed)
    false_accepts = exceptions = intact_sent = intact_got = candidates = frames_sent = 0
    total_bytes = 0
    t0 = time.perf_counter()
    for s in range(streams):
        parser = p.Parser()
        sent = set()
        intact = []
        stream = bytearray()
        for i in range(rng.randint(1, 4)):
            frame = _random_frame(rng, p, s + i)
            sent.add(frame)
            frames_sent += 1
            if rng.random() < 0.25:
                intact.append(frame)
                stream += frame
            else:
                stream += _damage(rng, frame)
            stream += _garbage(rng, p, rng.randint(0, 12))
        stream += bytes(p.MAX_FRAME)  # the line goes on idle: every candidate is decided
        total_bytes += len(stream)
        got = []
        try:
            for b in stream:
                m = parser.feed(b)
                while m >= 0:
                    got.append(bytes(parser.buf[:parser.length + p.OVERHEAD]))
                    m = parser.flush()
        except Exception:  # noqa: BLE001 - counted: the parser must never raise
            exceptions += 1
        false_accepts += sum(1 for f in got if f not in sent)
        intact_sent += len(intact)
        intact_got += sum(1 for f in intact if f in got)
        candidates += parser.crc_errors + sum(1 for f in got if f not in sent)
    seconds = time.perf_counter() - t0
    return {
        "streams": streams,
        "frames_sent": frames_sent,
        "bytes": total_bytes,
        "exceptions": exceptions,
        "crc_checked_damaged_candidates": candidates,
        "false_accepts": false_accepts,
        "false_accepts_expected_crc16": round(candidates / 65536.0, 2),
        "intact_frames_recovered": "%d/%d" % (intact_got, intact_sent),
        "cpu_seconds": round(seconds, 1),
    }


# --- hostile valid frames into the firmware -------------------------------------------

def _hostile_frame(rng, p, cfg, seq):
    """A well-formed frame a confused or malicious host could send: any id, any fields, any key/value."""
    msg_id = rng.choice(sorted(p.FORMATS))
    if msg_id == p.MSG_CONFIG_SET:
        key = rng.choice(sorted(cfg.KEYS)) if rng.random() < 0.9 else rng.randrange(256)
        spec = cfg.KEYS.get(key)
        if spec is not None and rng.random() < 0.8:
            value = rng.uniform(spec[2], spec[3])
            value = float(round(value)) if spec[4] == cfg.K_INT else value
        else:
            value = rng.choice([float("nan"), float("inf"), -1e30, 1e30, rng.uniform(-1e4, 1e4)])
        payload = p.pack(msg_id, key, value)
    elif msg_id == p.MSG_MODE:
        payload = p.pack(msg_id, rng.randrange(8))
    elif msg_id == p.MSG_SETPOINT:
        payload = p.pack(msg_id, rng.getrandbits(8), rng.randint(-32768, 32767), rng.randint(-32768, 32767),
                         rng.randint(-32768, 32767))
    else:
        payload = bytes(rng.getrandbits(8) for _ in range(p.SIZES[msg_id]))
    return p.encode(msg_id, seq & 0xFF, payload)


def bench_hostile(runs, seconds, seed=0):
    """Drive random valid frames into the firmware on its plant; report crashes and joint-limit excursions."""
    from opensteady.firmware import config as cfg
    from opensteady.firmware import protocol as p
    from opensteady.firmware.app import Gimbal
    from opensteady.firmware.offboard.plant import PlantHAL

    rng = random.Random(seed)
    exceptions = nacks = frames = crossings = 0
    worst_beyond_deg = worst_step_deg = 0.0
    names = ("yaw", "pitch", "roll")
    for _run in range(runs):
        hal = PlantHAL()
        g = Gimbal(hal)
        parser = p.Parser()
        last_cmd = None
        inside = [True, True, True]  # within the limits in force (plus LAG_TOL_DEG) on the last tick
        escaped = [False, False, False]  # crossed out of the limits and not back yet
        try:
            for k in range(int(seconds * 1e6 / g.period_us)):
                hal.step(g.period_us)
                if k > 1500 and rng.random() < 0.05:  # after calibration, about 50 frames a second
                    hal.send_to_firmware(_hostile_frame(rng, p, cfg, k))
                    frames += 1
                g.tick(hal.now_us)
                tx, hal.tx = hal.tx, bytearray()
                for b in tx:
                    m = parser.feed(b)
                    while m >= 0:
                        if m == p.MSG_ACK and parser.buf[p.PAYLOAD_OFFSET + 2] != p.ACK_OK:
                            nacks += 1
                        m = parser.flush()
                # the limits in force now, against where the joint really is (the plant, not the firmware's belief)
                # (a joint already outside, because limits were tightened with the motors off, walks back
                # in and does not count; crossing out of the limits does)
                for axis, name in enumerate(names):
                    j = math.degrees(hal.joint(axis))
                    beyond = max(g.cfg.get(name + "_joint_min_deg") - j, j - g.cfg.get(name + "_joint_max_deg"), 0.0)
                    now_inside = beyond <= LAG_TOL_DEG
                    if inside[axis] and not now_inside and g.motors_on:
                        crossings += 1
                        escaped[axis] = True
                    if now_inside:
                        escaped[axis] = False
                    elif escaped[axis]:
                        worst_beyond_deg = max(worst_beyond_deg, beyond)
                    inside[axis] = now_inside
                cmd = [g.axes[i].joint_udeg for i in range(3)]
                if last_cmd is not None and g.motors_on:
                    worst_step_deg = max(worst_step_deg, max(abs(a - b) for a, b in zip(cmd, last_cmd)) / 1e6)
                last_cmd = cmd
        except Exception:  # noqa: BLE001 - counted: the firmware must never raise
            exceptions += 1
    return {"runs": runs, "seconds_each": seconds, "frames": frames, "exceptions": exceptions, "nacks": nacks,
            "joint_crossed_out_of_limits": crossings,
            "worst_excursion_beyond_limits_deg": round(worst_beyond_deg, 1),
            "worst_joint_command_step_per_tick_deg": round(worst_step_deg, 2)}


# --- frozen child ----------------------------------------------------------------------

def bench_frozen():
    """Stop the MicroPython firmware child mid-run; how long until the run ends, and what it says."""
    from opensteady.sim.firmware_runner import FirmwareError
    from opensteady.sim.scenario import load_scenario
    from opensteady.sim.world import SimGimbal

    g = SimGimbal(load_scenario("stabilize-still"), firmware="micropython")
    try:
        g.step_to(0.2)
        os.kill(g.firmware.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            g.step_to(10.0)
            message = None
        except FirmwareError as exc:
            message = str(exc)
        return {"reply_timeout_s": g.firmware.reply_timeout_s, "ended_after_s": round(time.monotonic() - t0, 2),
                "message": message}
    finally:
        g.close()


# --- NaN device ------------------------------------------------------------------------

def bench_nan(messages):
    """A MAVLink gimbal sending hostile attitudes through a pty into the driver behind the Mount frontend."""
    import select

    from pymavlink.dialects.v20 import common

    from opensteady.host.mount import Mount
    from opensteady.host.mount.mavlink import MavlinkBackend

    device = common.MAVLink(None, srcSystem=1, srcComponent=154)
    nan, inf = float("nan"), float("inf")
    rng = random.Random(0)
    master, slave = os.openpty()
    mount = Mount(MavlinkBackend(os.ttyname(slave)))
    mount.open()
    exceptions = 0
    try:
        for i in range(messages):
            q = [rng.choice([nan, inf, -inf, 0.0, 1e30, rng.uniform(-1, 1)]) for _ in range(4)]
            rates = [rng.choice([nan, inf, rng.uniform(-1e3, 1e3)]) for _ in range(3)]
            os.write(master, device.gimbal_device_attitude_status_encode(0, 0, i, 0, q, *rates, 0).pack(device))
            select.select([slave], [], [], 0.01)
            try:
                mount.poll(i * 0.01)
            except Exception:  # noqa: BLE001 - counted: must be 0
                exceptions += 1
            if select.select([master], [], [], 0)[0]:
                os.read(master, 4096)  # the driver's heartbeats
        for _ in range(50):
            if not select.select([slave], [], [], 0.01)[0]:
                break
            mount.poll(messages * 0.01)
    finally:
        mount.close(messages * 0.01)
        os.close(master)
        os.close(slave)
    return {"messages": messages, "refused": mount.rejected, "accepted_as_telemetry": messages - mount.rejected,
            "exceptions": exceptions}


# --- byte loss -------------------------------------------------------------------------

def loss_run(drop_rate, seed, scenario="track-crossing", on_step=None):
    """One closed-loop run of ``scenario`` with ``drop_rate`` of the bytes lost in each direction (RunResult)."""
    from dataclasses import replace

    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario

    sc = load_scenario(scenario)
    return run_scenario(replace(sc, link=replace(sc.link, drop_rate=drop_rate)), seed=seed, on_step=on_step)


def bench_loss(seeds, rates=(0.0, 0.01, 0.05), scenario="track-crossing"):
    """Tracking against byte loss in both directions, per seed, with the ratio to the lossless run."""
    out = {}
    lossless = {}
    for rate in rates:
        for seed in seeds:
            m = loss_run(rate, seed, scenario).metrics
            rms = m["tracking_rms_frac"]
            if rate == 0.0:
                lossless[seed] = rms
            base = lossless.get(seed)
            out["%g%% seed %d" % (rate * 100, seed)] = {
                "tracking_rms_frac": rms,
                "x_lossless": round(rms / base, 3) if base and rms is not None else None,
                "camera_jitter_rms_deg": m["camera_jitter_rms_deg"],
                "telemetry_frames": m["telemetry_frames"],
                "bytes_dropped": m["link_bytes_dropped"],
                "faults": ",".join(m["faults"]) or "none",
            }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="opensteady bench faults", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SUITES), help="comma-separated suites (default: all): "
                        + ", ".join(SUITES))
    parser.add_argument("--streams", type=int, default=100000, help="fuzzed protocol streams (10^6 for the docs)")
    parser.add_argument("--hostile-runs", type=int, default=20, help="firmware runs with hostile frames")
    parser.add_argument("--hostile-seconds", type=float, default=6.0, help="simulated seconds per hostile run")
    parser.add_argument("--nan-messages", type=int, default=2000, help="hostile MAVLink attitude messages")
    parser.add_argument("--loss-seeds", default="0,1,2", help="seeds of the byte-loss runs (default 0,1,2)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        parser.error("unknown suite(s) %s: choose from %s" % (", ".join(unknown), ", ".join(SUITES)))
    runs = {
        "fuzz": lambda: bench_fuzz(args.streams),
        "hostile": lambda: bench_hostile(args.hostile_runs, args.hostile_seconds),
        "frozen": bench_frozen,
        "nan": lambda: bench_nan(args.nan_messages),
        "loss": lambda: bench_loss([int(s) for s in args.loss_seeds.split(",")]),
    }
    figures = {}
    for name in chosen:
        figures[name] = runs[name]()
        if not args.json:
            for key, value in figures[name].items():
                if isinstance(value, dict):
                    value = "  ".join("%s %s" % item for item in value.items())
                print("%-8s %-42s %s" % (name, key, value), flush=True)
    if args.json:
        print(json.dumps(figures))
    return 0
