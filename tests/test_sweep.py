"""opensteady sweep: the grid, a small sweep on a local Dask cluster, and a scheduler with two workers on loopback.

The sweep's rows must equal a serial loop's (the simulator is deterministic
per seed), whatever order the workers finish in.
"""

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from opensteady.host import sweep

pytest.importorskip("dask.distributed")

GRID = """
scenarios = ["stabilize-walking"]
seeds = [0, 1]
seconds = 2.6
[parameters]
pitch_rate_kp = [1.5, 2.0]
"""


def _grid(tmp_path, text=GRID):
    p = tmp_path / "grid.toml"
    p.write_text(text)
    return str(p)


def test_grid_lists_every_combination_and_rejects_bad_files(tmp_path):
    g = sweep.load_grid(_grid(tmp_path))
    runs = g.runs()
    assert [(r["seed"], r["params"]["pitch_rate_kp"]) for r in runs] == [(0, 1.5), (1, 1.5), (0, 2.0), (1, 2.0)]
    with pytest.raises(sweep.GridError, match="parameters.pitch_rate_kp"):
        sweep.load_grid(_grid(tmp_path, 'scenarios = ["stabilize-still"]\n[parameters]\npitch_rate_kp = [99.0]\n'))
    with pytest.raises(sweep.GridError, match="unknown firmware config key"):
        sweep.load_grid(_grid(tmp_path, 'scenarios = ["stabilize-still"]\n[parameters]\nno_such_key = [1]\n'))
    with pytest.raises(sweep.GridError, match="unknown key"):
        sweep.load_grid(_grid(tmp_path, 'scenarios = ["stabilize-still"]\nseed = [1]\n'))
    with pytest.raises(sweep.GridError, match="unknown scenario"):
        sweep.load_grid(_grid(tmp_path, 'scenarios = ["nope"]\n'))
    with pytest.raises(sweep.GridError, match="warm-up"):
        sweep.load_grid(_grid(tmp_path, 'scenarios = ["stabilize-still"]\nseconds = 1.0\n'))


def test_small_sweep_on_a_local_cluster_matches_a_serial_loop(tmp_path):
    out = tmp_path / "sweep.csv"
    png = tmp_path / "sweep.png"
    from opensteady.host.cli import main

    assert main(["sweep", _grid(tmp_path), "--out", str(out), "--plot", str(png), "--workers", "2",
                 "--compare-serial"]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [(r["seed"], r["pitch_rate_kp"]) for r in rows] == [("0", "1.5"), ("1", "1.5"), ("0", "2.0"), ("1", "2.0")]
    assert all(r["error"] == "" and r["faults"] == "" for r in rows)
    serial = sweep.run_serial(sweep.load_grid(_grid(tmp_path)))
    for r, s in zip(rows, serial):
        assert float(r["camera_jitter_rms_deg"]) == pytest.approx(s["camera_jitter_rms_deg"], abs=1e-9)
    # the gains matter: the two pitch gains give different jitter
    assert rows[0]["camera_jitter_rms_deg"] != rows[2]["camera_jitter_rms_deg"]
    assert png.stat().st_size > 10000


def test_scheduler_and_two_workers_on_loopback(tmp_path):
    dask_cli = str(Path(sys.executable).parent / "dask")
    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ)
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)]
    try:
        # the scheduler writes its address when it is listening
        import json
        import time

        from dask.distributed import Client

        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline and procs[0].poll() is None:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            procs.append(subprocess.Popen([dask_cli, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                           "--no-dashboard", "--local-directory", tempfile.mkdtemp(dir=tmp_path)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            assert len(client.scheduler_info()["workers"]) == 2
        rows = sweep.run_grid(sweep.load_grid(_grid(tmp_path)), address=address)
        assert len(rows) == 4 and all(r["error"] == "" for r in rows)
        assert all(r["camera_jitter_rms_deg"] is not None for r in rows)
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_tune_check_against_a_grid_with_a_heavier_phone(tmp_path):
    from opensteady.host.tune import check_against_grid

    grid = _grid(tmp_path, 'scenarios = ["stabilize-walking"]\nseeds = [0]\nseconds = 2.6\nphone_mass_kg = 0.26\n'
                           '[parameters]\npitch_rate_kp = [1.0, 2.0]\n')
    assert sweep.load_grid(grid).runs()[0]["phone_mass_kg"] == 0.26
    tuned = {"yaw_rate_kp": 2.5, "pitch_rate_kp": 1.5, "roll_rate_kp": 2.5}
    check = check_against_grid(grid, tuned, workers=1)
    # the tuned run, two pitch values with the rest at the tuned gains, then the per-axis best together
    assert check["grid_runs"] == 3 and check["phone_mass_kg"] == 0.26
    assert check["ratio"] == pytest.approx(check["autotune_jitter_deg"] / check["grid_best_jitter_deg"], rel=1e-2)
    light = sweep.run_one(dict(sweep.load_grid(grid).runs()[0], phone_mass_kg=0.15))
    heavy = sweep.run_one(sweep.load_grid(grid).runs()[0])
    assert light["camera_jitter_rms_deg"] != heavy["camera_jitter_rms_deg"]  # the phone's mass reached the plant
    with pytest.raises(sweep.GridError, match="phone_mass_kg"):
        sweep.load_grid(_grid(tmp_path, 'scenarios = ["stabilize-still"]\nphone_mass_kg = 3.0\n'))
