"""Automatic tuning (``opensteady tune``): a relay experiment on the firmware, per axis, and a step response.

The firmware does the work (firmware/autotune.py): on MSG_TUNE it drives
one axis' effort with a relay on the camera's rate (the cascade's inner
loop), widening the hysteresis past the noise and growing the relay until
the cycle is clean, measures the ultimate gain and period, sets that axis'
gains by the chosen rule (the cascade rule by default), checks them
against the config's ranges and saves them. This command starts it, shows
the progress the firmware reports (MSG_TUNE_STATUS), and then shows the
result working: a 5 deg angle step on that axis in track mode, its
overshoot and 10-90 % rise time.

    opensteady tune --sim                         # every axis of the simulated gimbal (closed-loop drive)
    opensteady tune --sim --scenario stabilize-still --check-grid sim/sweeps/open-loop-gains.toml  # open loop
    opensteady tune --sim --phone-kg 0.26 --check-grid sim/sweeps/foc-gains.toml   # against a grid search
    opensteady tune --port /dev/ttyACM0 --axis pitch --plot step.png

``--sim`` runs on the simulated rig (host/simrig.py: the world ``opensteady
sim`` and ``track --sim`` run on) through the host's serial link
(host/link.py: handshake, heartbeats), as on a board; only the per-frame
host loop is not involved, since tuning needs no camera frames.

On an open-loop axis (the field-angle drive, the default) the firmware puts
the relay on the camera's angle instead, at a sixteenth of the relay: it
cycles at the field spring's resonance, whose frequency and damping set
the rate PD by ``RULE_SPRING`` (rate_kd_ms included, read back here with
CONFIG_GET; ``--rule`` applies to closed-loop axes). On a board the gimbal must stand still on a table (or be held still) with the
camera free to move: the relay swings the tuned axis a little.
"""

import json
import math
import sys
import time

from opensteady.firmware import protocol as P
from opensteady.firmware.autotune import (
    RULE_CASCADE,
    RULE_TYREUS_LUYBEN,
    RULE_ZIEGLER_NICHOLS,
    TUNE_DONE,
    TUNE_RUNNING,
)

AXES = ("yaw", "pitch", "roll")
RULES = {"cascade": RULE_CASCADE, "tyreus-luyben": RULE_TYREUS_LUYBEN, "ziegler-nichols": RULE_ZIEGLER_NICHOLS}
STATES = ("idle", "running", "done", "failed")
REASONS = ("ok", "no steady cycle in time", "swing too big: lower --relay-permille",
           "swing inside the hysteresis: raise --relay-permille", "gains outside the config ranges",
           "refused")
STEP_DEG = 5.0


class TuneError(Exception):
    """Something the user can fix; the message says what."""


class SimDevice:
    """The simulated rig (``host.simrig.SimRig``, the world every host path runs on): its UART and its clock."""

    def __init__(self, scenario, seed=0, firmware="inprocess"):
        from opensteady.host.simrig import SimRig

        self.rig = SimRig(scenario, firmware=firmware, seed=seed)
        self.url = "sim://" + scenario.name

    def port(self):
        return self.rig.port()

    def clock(self):
        return self.rig.clock()

    def wait(self, dt_s):
        self.rig.advance_to(self.rig.clock() + dt_s)

    def close(self):
        self.rig.close()


class SerialDevice:
    """A board on a serial port (any pyserial URL); time is the wall clock."""

    def __init__(self, url):
        self.url = url

    port = None  # the link opens the URL itself

    def clock(self):
        return time.monotonic()

    def wait(self, dt_s):
        time.sleep(dt_s)

    def close(self):
        pass


class Session:
    """The host's link (``host.link.Link``) to the device; the latest telemetry, ACKs and TUNE_STATUS messages."""

    def __init__(self, dev):
        from opensteady.host.link import Link, LinkError

        self.dev = dev
        self.link = Link(dev.url, port_factory=dev.port, clock=dev.clock)
        try:
            self.link.open()  # the version handshake, as every host path does
        except LinkError as exc:
            raise TuneError(str(exc)) from None
        self.telemetry = None
        self.telemetry_log = []  # (t_s, fields dict)
        self.acks = []
        self.tune_status = []
        self.config_values = {}  # key id -> value, from CONFIG_VALUE

    def config_get(self, name, timeout_s=2.0, retry_s=0.5):
        """One config value of the device, by name (CONFIG_GET)."""
        from opensteady.firmware.config import KEY_IDS

        key = KEY_IDS[name]
        self.config_values.pop(key, None)
        end = self.now() + timeout_s
        while self.now() < end:
            self.send(P.MSG_CONFIG_GET, key)
            resend = self.now() + retry_s
            while self.now() < min(resend, end):
                self.pump()
                if key in self.config_values:
                    return self.config_values[key]
        raise TuneError("no CONFIG_VALUE for %s within %.1f s" % (name, timeout_s))

    def now(self):
        return self.dev.clock()

    def send(self, msg_id, *fields):
        return self.link.send(msg_id, *fields)

    def pump(self, dt_s=0.01):
        """Let ``dt_s`` pass and take in what arrived (the link keeps the heartbeats going)."""
        self.dev.wait(dt_s)
        for mid, fields in self.link.poll():
            if mid == P.MSG_TELEMETRY:
                self.telemetry = fields
                self.telemetry_log.append((self.now(), fields))
            elif mid == P.MSG_ACK:
                self.acks.append(tuple(fields.values()))
            elif mid == P.MSG_TUNE_STATUS:
                self.tune_status.append(fields)
            elif mid == P.MSG_CONFIG_VALUE:
                self.config_values[fields["key"]] = fields["value"]

    def request(self, msg_id, *fields, timeout_s=2.0, retry_s=0.5):
        """Send until an ACK for it arrives; return the ACK status."""
        end = self.now() + timeout_s
        while self.now() < end:
            seq = self.send(msg_id, *fields)
            resend = self.now() + retry_s
            while self.now() < min(resend, end):
                self.pump()
                for a in self.acks:
                    if a[0] == msg_id and a[1] == seq:
                        self.acks.clear()
                        return a[2]
        raise TuneError("no answer to message 0x%02x within %.1f s: is OpenSteady firmware running there?"
                        % (msg_id, timeout_s))


def _wait_ready(s, timeout_s):
    """Until the firmware accepts MODE lock (gyro and any sensor calibration finished)."""
    end = s.now() + timeout_s
    while s.now() < end:
        if s.request(P.MSG_MODE, P.MODE_LOCK) == P.ACK_OK:
            return
        s.pump(0.2)
    raise TuneError("the gimbal did not become ready in %.0f s (calibration needs it still)" % timeout_s)


def tune_axis(s, axis, rule, relay_permille, hyst_dps, progress, timeout_s=15.0):
    s.tune_status.clear()
    status = s.request(P.MSG_TUNE, axis, rule, relay_permille, int(round(hyst_dps * 100)))
    if status != P.ACK_OK:
        raise TuneError("the firmware refused to tune %s: %s" % (AXES[axis], P.NACK_NAMES[status]))
    end = s.now() + timeout_s
    while s.now() < end:
        s.pump()
        while s.tune_status:
            st = s.tune_status.pop(0)
            if st["state"] == TUNE_RUNNING:
                progress("%s: relay cycle %d" % (AXES[axis], st["cycles"]))
            else:
                return st
    raise TuneError("no result from the firmware within %.0f s" % timeout_s)


def step_response(s, axis, step_deg=STEP_DEG, hold_s=1.5):
    """A step of the axis' earth-frame angle in track mode; (times, angles, metrics)."""
    if s.telemetry is None:
        s.pump(0.1)
    start = [s.telemetry[n + "_cdeg"] for n in AXES]
    if s.request(P.MSG_MODE, P.MODE_TRACK) != P.ACK_OK:
        raise TuneError("the firmware refused track mode for the step response")
    target = list(start)
    target[axis] = start[axis] + int(round(step_deg * 100))
    flags = P.SP_YAW_IN_EARTH_FRAME | P.SP_PITCH_IN_EARTH_FRAME | P.SP_ROLL_IN_EARTH_FRAME
    s.telemetry_log.clear()
    t0 = s.now()
    while s.now() < t0 + hold_s:
        s.send(P.MSG_SETPOINT, flags, *target)
        for _ in range(5):
            s.pump()
    s.request(P.MSG_MODE, P.MODE_LOCK)
    name = AXES[axis] + "_cdeg"
    ts = [t - t0 for t, tel in s.telemetry_log]
    ys = [(tel[name] - start[axis]) / 100.0 for t, tel in s.telemetry_log]
    return ts, ys, step_metrics(ts, ys, step_deg)


def step_metrics(ts, ys, step):
    """Overshoot (fraction of the step), 10-90 % rise time (s) and the final error (deg) of a step response."""
    if not ys:
        return {"overshoot": None, "rise_s": None, "final_error_deg": None}
    peak = max(ys) if step > 0 else min(ys)
    t10 = next((t for t, y in zip(ts, ys) if y >= 0.1 * step), None)
    t90 = next((t for t, y in zip(ts, ys) if y >= 0.9 * step), None)
    tail = ys[-max(1, len(ys) // 5):]
    return {"overshoot": round(max(0.0, (peak - step) / step), 4),
            "rise_s": round(t90 - t10, 4) if t10 is not None and t90 is not None else None,
            "final_error_deg": round(sum(tail) / len(tail) - step, 4)}


def check_against_grid(grid_path, tuned, phone_mass_kg=None, workers=None, progress=None):
    """Jitter with the tuned gains against the best a grid search over the same gains finds.

    ``grid_path`` is a sweep grid file (host/sweep.py) whose [parameters]
    list values of ``<axis>_<gain>``; ``tuned`` maps ``<axis>_<gain>`` to
    the auto-tuned value. The axes barely couple, so each axis' values are
    searched with the other axes at the tuned gains, and the per-axis bests
    are then run together; the grid's best is the lowest mean over the seeds
    of any of those runs. Everything runs on Dask (host.sweep.run_grid).
    Returns a dict: autotune and grid-best jitter, their ratio, the runs.
    """
    from opensteady.host import sweep

    grid = sweep.load_grid(grid_path)
    phone = phone_mass_kg if phone_mass_kg is not None else grid.phone_mass_kg

    def make(params):
        return sweep.Grid(grid.scenarios, grid.seeds, params, grid.seconds, grid.firmware, phone)

    fixed = {k: [v] for k, v in tuned.items()}
    groups = [("autotune", make(fixed))]
    for axis in AXES:
        own = {k: v for k, v in grid.parameters.items() if k.startswith(axis + "_")}
        if own:
            groups.append((axis, make({**{k: v for k, v in fixed.items() if not k.startswith(axis + "_")}, **own})))

    class _Batch:  # every group's runs in one Dask job
        def runs(self):
            return [dict(r, group=name) for name, g in groups for r in g.runs()]

    rows = sweep.run_grid(_Batch(), workers=workers, progress=progress)
    runs = _Batch().runs()
    means = {}  # (group, params) -> jitters over seeds
    for run, row in zip(runs, rows):
        key = (run["group"], tuple(sorted(run["params"].items())))
        means.setdefault(key, []).append(row["camera_jitter_rms_deg"] if not row["error"] else None)
    means = {k: (sum(v) / len(v) if None not in v else math.inf) for k, v in means.items()}
    auto = next(v for k, v in means.items() if k[0] == "autotune")
    best = dict(tuned)
    for axis in AXES:
        mine = {k: v for k, v in means.items() if k[0] == axis}
        if mine:
            params = dict(min(mine, key=mine.get)[1])
            best.update({k: v for k, v in params.items() if k.startswith(axis + "_")})
    together = sweep.run_grid(make({k: [v] for k, v in best.items()}), workers=workers)
    vals = [r["camera_jitter_rms_deg"] for r in together if not r["error"]]
    together_mean = sum(vals) / len(vals) if len(vals) == len(together) else math.inf
    grid_best = min([v for k, v in means.items() if k[0] != "autotune"] + [together_mean])
    return {"autotune_jitter_deg": round(auto, 5), "grid_best_jitter_deg": round(grid_best, 5),
            "ratio": round(auto / grid_best, 3), "grid_runs": len(runs) - len(grid.seeds) + len(together),
            "grid_best_gains": best if together_mean <= grid_best else None, "scenarios": grid.scenarios,
            "phone_mass_kg": phone}


def add_arguments(parser):
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sim", action="store_true", help="tune the simulated gimbal")
    where.add_argument("--port", metavar="URL", help="serial port or pyserial URL of a board")
    parser.add_argument("--scenario", default="stabilize-still-foc",
                        help="with --sim: the scenario whose gimbal to tune (default: %(default)s, the handle "
                             "still)")
    parser.add_argument("--phone-kg", type=float, help="with --sim: a heavier or lighter phone (kg; default: the "
                        "scenario's, 0.195)")
    parser.add_argument("--seed", type=int, default=0, help="with --sim: the simulation's seed (default: 0)")
    parser.add_argument("--axis", choices=AXES + ("all",), default="all", help="axis to tune (default: all)")
    parser.add_argument("--rule", choices=sorted(RULES), default="cascade",
                        help="tuning rule (default: %(default)s, for the cascade's disturbance rejection; "
                             "tyreus-luyben is slower, ziegler-nichols overshoots)")
    parser.add_argument("--relay-permille", type=int, default=100,
                        help="relay amplitude, permille of the axis' effort limit (default: %(default)s)")
    parser.add_argument("--hyst-dps", type=float, default=0.05,
                        help="starting relay hysteresis on the camera rate, deg/s; the firmware doubles it while "
                             "noise switches the relay (default: %(default)s)")
    parser.add_argument("--plot", metavar="OUT.png", help="plot the step responses")
    parser.add_argument("--check-grid", metavar="GRID.toml",
                        help="with --sim: then run the grid's scenario with the tuned gains and a grid search over "
                             "the same gains (a sweep grid file of <axis>_<gain> values, run on Dask) and print both")
    parser.add_argument("--workers", type=int, help="with --check-grid: local Dask workers (default: one per core)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on the last line")


def run(args):
    if not 1 <= args.relay_permille <= 1000:
        print("opensteady tune: error: --relay-permille must be 1..1000, got %d" % args.relay_permille,
              file=sys.stderr)
        return 2
    out = sys.stderr if args.json else sys.stdout
    axes = range(3) if args.axis == "all" else [AXES.index(args.axis)]
    try:
        if args.sim:
            from opensteady.sim.scenario import PhoneParams, ScenarioError, load_scenario

            try:
                overrides = {"phone": PhoneParams(mass_kg=args.phone_kg)} if args.phone_kg else None
                dev = SimDevice(load_scenario(args.scenario, overrides=overrides), seed=args.seed)
            except ScenarioError as exc:
                raise TuneError(str(exc)) from None
        else:
            dev = SerialDevice(args.port)
        results = []
        s = None
        try:
            s = Session(dev)
            _wait_ready(s, 20.0)
            s.pump(1.0)  # let the motors' start settle before the first relay listens to the noise
            for axis in axes:
                st = tune_axis(s, axis, RULES[args.rule], args.relay_permille, args.hyst_dps,
                               lambda msg: print(msg, file=out))
                r = {"axis": AXES[axis], "state": STATES[st["state"]], "reason": REASONS[st["reason"]],
                     "ku": round(st["ku"], 4), "pu_s": st["pu_ms"] / 1000.0,
                     "angle_kp": round(st["angle_kp"], 4), "rate_kp": round(st["rate_kp"], 4),
                     "rate_ki": round(st["rate_ki"], 4)}
                if st["state"] == TUNE_DONE:
                    # TUNE_STATUS carries three gains; an open-loop axis' rule also sets the rate derivative
                    r["rate_kd_ms"] = round(s.config_get(AXES[axis] + "_rate_kd_ms"), 4)
                    ts, ys, m = step_response(s, axis)
                    r.update(m)
                    r["_step"] = (ts, ys)
                print("%-6s %-7s Ku %.3g, Pu %.3f s -> angle_kp %.3g, rate_kp %.3g, rate_ki %.3g, rate_kd_ms %.3g; "
                      "step %s%s"
                      % (r["axis"], r["state"], r["ku"], r["pu_s"], r["angle_kp"], r["rate_kp"], r["rate_ki"],
                         r.get("rate_kd_ms", math.nan),
                         "overshoot %.0f %%, rise %.3f s" % (100 * r["overshoot"], r["rise_s"] or math.nan)
                         if "overshoot" in r and r["overshoot"] is not None else "-",
                         "" if r["state"] == "done" else " (%s)" % r["reason"]), file=out)
                results.append(r)
        finally:
            if s is not None:
                s.link.close()
            dev.close()
    except TuneError as exc:
        print("opensteady tune: error: %s" % exc, file=sys.stderr)
        return 2
    if args.plot:
        _plot(results, args.plot)
    ok = all(r["state"] == "done" for r in results)
    out_json = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    if args.check_grid and ok:
        tuned = {"%s_%s" % (r["axis"], g): r[g] for r in results
                 for g in ("angle_kp", "rate_kp", "rate_ki", "rate_kd_ms")}
        try:
            check = check_against_grid(args.check_grid, tuned, args.phone_kg, args.workers)
        except ValueError as exc:  # GridError
            print("opensteady tune: error: %s" % exc, file=sys.stderr)
            return 2
        print("walking jitter: autotune %.4f deg, grid best %.4f deg (%d runs): ratio %.3f"
              % (check["autotune_jitter_deg"], check["grid_best_jitter_deg"], check["grid_runs"], check["ratio"]),
              file=out)
        out_json = {"axes": out_json, "check": check}
    if args.json:
        print(json.dumps(out_json))
    return 0 if ok else 1


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r in results:
        if "_step" in r:
            ts, ys = r["_step"]
            ax.plot(ts, ys, label="%s (overshoot %.0f %%)" % (r["axis"], 100 * (r["overshoot"] or 0)))
    ax.axhline(STEP_DEG, color="k", lw=0.8, ls="--")
    ax.set_xlabel("s after the step")
    ax.set_ylabel("camera angle change, deg")
    ax.set_title("step response with the auto-tuned gains")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
