"""Simulator benchmarks (``opensteady bench sim``), the figures in docs/benchmarks.md "## Simulator".

    python -m opensteady.host.simbench --repeat 3 [--json]
    python -m opensteady.host.simbench --scenarios --seeds 4     # per scenario and seed, JSON lines

1. realtime factor of physics + in-process firmware at 1 kHz (stabilize-walking, no camera),
   interpreted and compiled (``--firmware compiled``: sim/compiled_firmware.py);
2. the same with the firmware in the MicroPython binary;
3. realtime factor with vision in the loop at 30 fps (track-crossing);
4. tracking_rms_frac on track-crossing, OpenSteady and the naive baseline on the same seed;
5. camera_jitter_rms_deg on stabilize-walking, with the handle IMU's feed-forward (the simulated
   board has one) and without it (``[imu] handle_imu = false``), in the same run.

Each figure is the median over ``--repeat`` runs (seeds 0, 1, ...); the
realtime factors count the whole run (model load, firmware start, detector
start) against the simulated time, by the wall clock (``rtf_*``) and by this
process's CPU time (``rtf_cpu_*``, which other load on the machine disturbs
less; the micropython figure's CPU time excludes the child process). The machine's load average is printed
beside them because the machine is shared.

``--scenarios`` prints, for every bundled scenario and seeds 0..N-1, the
tracking figures (``tracking_rms_frac``, lost and wrong-target fractions; on
the track-crossing scenarios also the baseline's) or, for the stabilize
scenarios, ``camera_jitter_rms_deg`` and the handle's motion. These do not
depend on the machine's speed: a run is repeatable for a seed.
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys

GOALS = {
    "rtf_physics_firmware_inprocess": 50.0,
    "rtf_physics_firmware_compiled": 50.0,
    "rtf_vision_30fps": 2.0,
    "tracking_rms_frac": 0.02,
    "tracking_rms_vs_baseline": 1 / 3,
    "camera_jitter_rms_deg_walking": 0.05,
}


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def tick_breakdown(ticks=3000, firmware="inprocess"):
    """CPU microseconds per 1 ms control tick of stabilize-walking, and where they go.

    The whole lockstep tick (``SimGimbal.step_to``, after 2 s: calibrated,
    motors on, walking), then each part alone, in place, as many times: the
    firmware's tick, ``mj_step`` through the binding, the plant's own step
    (``plant.step3``: the binding's ``mj_step`` interpreted; compiled, the C
    function without MuJoCo's profiling timers), the two IMU models, the
    three motor models; the rest is the world's own tick loop, the hand's
    pose, the traces and the cache misses the parts cause each other
    (``tick_us_sim_models_and_glue`` is the whole tick less the firmware and
    the plant's step). Each figure is the best of 3 passes (the machine is shared).
    """
    import time

    import mujoco

    from opensteady.sim.scenario import load_scenario
    from opensteady.sim.world import SimGimbal

    def best(fn):
        out = []
        for _ in range(3):
            t0 = time.process_time()
            fn()
            out.append((time.process_time() - t0) / ticks * 1e6)
        return min(out)

    with SimGimbal(load_scenario("stabilize-walking"), firmware=firmware) as g:
        g.step_to(2.0)  # calibrated, motors on, walking
        hal = g.hal
        plant = g.plant
        total = best(lambda: g.step_to(g.time_s + ticks / 1000.0))

        def fw_ticks():
            for _ in range(ticks):
                hal.now_us += g.period_us
                g.firmware.tick(hal.now_us)

        def mj_steps():
            for _ in range(ticks):
                mujoco.mj_step(plant.model, plant.data)

        def plant_steps():
            tau = [float(plant.data.qfrc_applied[plant.model.jnt_dofadr[plant.model.joint(n).id]])
                   for n in ("yaw", "pitch", "roll")]
            for _ in range(ticks):
                plant.step3(tau[0], tau[1], tau[2])

        imu_t = [g.time_s]

        def imu_samples():  # one new sample per IMU and call, as in the tick
            t = imu_t[0]
            for _ in range(ticks):
                t += 0.001
                g.loop.sample_imus(t)
            imu_t[0] = t

        def motor_models():
            angle, rate = plant.joint_state()
            d = hal.duties
            m = g.motors
            for _ in range(ticks):
                for k in (0, 1, 2):
                    m[k].torque_nm(d[k][0], d[k][1], d[k][2], angle[k], rate[k])

        fw_us = best(fw_ticks)
        physics = best(mj_steps)
        step = best(plant_steps)
        imus = best(imu_samples)
        motors = best(motor_models)
    rest = total - fw_us - step - imus - motors
    return {"tick_us_total": round(total, 1), "tick_us_firmware_inprocess": round(fw_us, 1),
            "tick_us_mj_step": round(physics, 1), "tick_us_plant_step": round(step, 1),
            "tick_us_imu_models": round(imus, 1),
            "tick_us_motor_models": round(motors, 1), "tick_us_world_loop_and_rest": round(rest, 1),
            "tick_us_sim_models_and_glue": round(total - fw_us - step, 1), "firmware": firmware}


def host_split(firmware="compiled", scenario="stabilize-walking", seconds=None):
    """CPU seconds of one ``run_scenario`` and where they go outside the lockstep ticks.

    The run is timed as ``opensteady sim`` times it, with start-up (``open_rig``
    and ``mount.open``: model, firmware import and boot, handshake) and
    ``result()`` (the metrics) timed inside it; every call the host side
    makes into the world after the handshake (``SimGimbal.step_to``,
    ``write``, ``read``) is recorded, and replayed on a fresh rig with no
    host: the world computes the same ticks (``same_world``: the same final
    attitude), so ``host_loop_s`` (the loop less the replay) is what the
    host loop itself costs in place, cache misses included.
    """
    import contextlib
    import time

    from opensteady.host import simrig
    from opensteady.host.mount import Mount
    from opensteady.sim.scenario import load_scenario
    from opensteady.sim.world import SimGimbal

    sc = load_scenario(scenario, overrides={} if seconds is None else {"seconds": seconds})
    config = simrig.default_pipeline_config()  # before the clock starts, as `opensteady sim` builds it
    calls = []
    spent = {"startup_s": 0.0, "result_s": 0.0}
    recording = [False]
    saved = [(SimGimbal, "step_to"), (SimGimbal, "write"), (SimGimbal, "read"), (simrig, "open_rig"),
             (Mount, "open"), (simrig.ScenarioRecorder, "result")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in saved]

    def recorded(kind, fn):
        def call(self, *args):
            if recording[0]:
                calls.append((kind, args))
            return fn(self, *args)
        return call

    def timed(key, fn, then_record=False):
        def call(*args, **kwargs):
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.process_time() - t0
                recording[0] = recording[0] or then_record
        return call

    end = []  # the run's world when its metrics are taken: ticks, camera attitude, motor duties

    def final_state(recorder):
        g = recorder.rig.gimbal
        end.extend([g.tick_count, g.camera_ypr_deg(), g.hal.duties])
        return result(recorder)

    (_, _, step_to), (_, _, write), (_, _, read), (_, _, open_rig), (_, _, mount_open), (_, _, result) = saved
    try:
        SimGimbal.step_to = recorded("step_to", step_to)
        SimGimbal.write = recorded("write", write)
        SimGimbal.read = recorded("read", read)
        simrig.open_rig = timed("startup_s", open_rig)
        Mount.open = timed("startup_s", mount_open, then_record=True)
        simrig.ScenarioRecorder.result = timed("result_s", final_state)
        run = simrig.run_scenario(sc, firmware=firmware, pipeline_config=config)
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
    rig, _pipeline, mount = simrig.open_rig(sc, config, firmware=firmware)
    try:
        mount.open()
        g = rig.gimbal
        # the GC as the run had it (trees before no_cyclic_gc ran with it on)
        with getattr(simrig, "no_cyclic_gc", contextlib.nullcontext)():
            t0 = time.process_time()
            for kind, args in calls:
                getattr(g, kind)(*args)
            world = time.process_time() - t0
        same = [g.tick_count, g.camera_ypr_deg(), g.hal.duties] == end
    finally:
        mount.close(rig.clock())
        rig.close()
    # the recorder's own cost, counted in the run's loop: as many recorded calls of a no-op
    noop = recorded("noop", lambda self: None)
    recording[0] = True
    n = len(calls)
    t0 = time.process_time()
    for _ in range(n):
        noop(None)
    recorder_s = time.process_time() - t0
    del calls[n:]
    total = run.metrics["cpu_seconds"]
    loop = total - spent["startup_s"] - spent["result_s"] - recorder_s
    return {"scenario": scenario, "firmware": firmware, "cpu_s": total, "startup_s": round(spent["startup_s"], 4),
            "result_s": round(spent["result_s"], 4), "world_replayed_s": round(world, 4),
            "host_loop_s": round(loop - world, 4), "host_calls": n, "recorder_s": round(recorder_s, 4),
            "same_world": same}


def measure(repeat=1):
    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario

    walking = load_scenario("stabilize-walking")
    crossing = load_scenario("track-crossing")
    rows = {k: [] for k in ("rtf_physics_firmware_inprocess", "rtf_physics_firmware_micropython", "rtf_vision_30fps",
                            "rtf_cpu_physics_firmware_inprocess", "rtf_cpu_vision_30fps",
                            "rtf_physics_firmware_compiled", "rtf_cpu_physics_firmware_compiled",
                            "tracking_rms_frac", "baseline_tracking_rms_frac", "tracking_lost_frac",
                            "camera_jitter_rms_deg_walking", "handle_motion_rms_deg_walking",
                            "camera_jitter_rms_deg_walking_no_handle_imu")}
    walking_plain = dataclasses.replace(walking, imu=dataclasses.replace(walking.imu, handle_imu=False))
    for seed in range(repeat):
        w = run_scenario(walking, firmware="inprocess", seed=seed).metrics
        rows["rtf_physics_firmware_inprocess"].append(w["realtime_factor"])
        rows["rtf_cpu_physics_firmware_inprocess"].append(w["realtime_factor_cpu"])
        rows["camera_jitter_rms_deg_walking"].append(w["camera_jitter_rms_deg"])
        rows["handle_motion_rms_deg_walking"].append(w["handle_motion_rms_deg"])
        w0 = run_scenario(walking_plain, firmware="inprocess", seed=seed).metrics
        rows["camera_jitter_rms_deg_walking_no_handle_imu"].append(w0["camera_jitter_rms_deg"])
        wc = run_scenario(walking, firmware="compiled", seed=seed).metrics
        rows["rtf_physics_firmware_compiled"].append(wc["realtime_factor"])
        rows["rtf_cpu_physics_firmware_compiled"].append(wc["realtime_factor_cpu"])
        mp = run_scenario(walking, firmware="micropython", seed=seed).metrics
        rows["rtf_physics_firmware_micropython"].append(mp["realtime_factor"])
        c = run_scenario(crossing, firmware="inprocess", seed=seed).metrics
        rows["rtf_vision_30fps"].append(c["realtime_factor"])
        rows["rtf_cpu_vision_30fps"].append(c["realtime_factor_cpu"])
        rows["tracking_rms_frac"].append(c["tracking_rms_frac"])
        rows["tracking_lost_frac"].append(c["tracking_lost_frac"])
        b = run_scenario(crossing, firmware="inprocess", seed=seed, tracker="baseline").metrics
        rows["baseline_tracking_rms_frac"].append(b["tracking_rms_frac"])
    out = {k: _median(v) for k, v in rows.items()}
    mine, base = out["tracking_rms_frac"], out["baseline_tracking_rms_frac"]
    out["tracking_rms_vs_baseline"] = round(mine / base, 4) if mine is not None and base else None
    out.update(tick_breakdown())
    out.update({k.replace("tick_us", "compiled_tick_us"): v for k, v in tick_breakdown(firmware="compiled").items()
                if k.startswith("tick_us")})
    out["repeat"] = repeat
    out["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    out["goals"] = GOALS
    return out


SCENARIO_KEYS = ("scenario", "seed", "tracking_rms_frac", "tracking_lost_frac", "wrong_target_frac",
                 "camera_jitter_rms_deg", "handle_motion_rms_deg", "faults", "mode_reached")


def scenario_figures(seeds, stream=sys.stdout):
    """One JSON line per bundled scenario and seed (see the module docstring); returns the rows."""
    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario, scenario_names

    rows = []
    for name in scenario_names():
        sc = load_scenario(name)
        for seed in range(seeds):
            m = run_scenario(sc, seed=seed).metrics
            row = {k: m.get(k) for k in SCENARIO_KEYS}
            if name.startswith("track-crossing"):
                row["baseline_tracking_rms_frac"] = run_scenario(sc, seed=seed, tracker="baseline").metrics[
                    "tracking_rms_frac"]
            rows.append(row)
            print(json.dumps(row), file=stream, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="opensteady bench sim", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scenarios", action="store_true", help="per-scenario tracking and jitter figures instead")
    parser.add_argument("--seeds", type=int, default=4, help="with --scenarios: seeds 0..N-1")
    args = parser.parse_args(argv)
    if args.scenarios:
        scenario_figures(args.seeds)
        return 0
    if args.repeat < 1:
        print("--repeat must be at least 1", file=sys.stderr)
        return 2
    print("load average before: %.2f" % os.getloadavg()[0], file=sys.stderr)
    out = measure(args.repeat)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            if k != "goals":
                goal = GOALS.get(k)
                print("%-36s %-10s %s" % (k, v, "" if goal is None else "(goal %s)" % round(goal, 4)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
