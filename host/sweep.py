"""Scenario sweeps on Dask distributed (``opensteady sweep``): a grid of runs, one CSV row each, a plot.

A grid file names scenarios, seeds and firmware config values; every
combination is one simulator run (``host.simrig.run_scenario``: the host loop on the simulated rig), executed on a
Dask cluster: a local one on this machine by default (one single-threaded
worker process per core), or an existing scheduler with ``--address``::

    opensteady sweep grid.toml --out sweep.csv --plot sweep.png
    opensteady sweep grid.toml --address tcp://10.0.0.5:8786      # workers on other machines
    opensteady sweep grid.toml --compare-serial                    # also time a plain loop

The grid file::

    scenarios = ["stabilize-walking", "stabilize-still"]
    seeds = [0, 1, 2]
    seconds = 6.0                 # optional: override each scenario's length
    firmware = "inprocess"        # or "micropython" (the real VM per run), or "compiled" (Cython, faster)
    phone_mass_kg = 0.26          # optional: a heavier or lighter phone (balanced in the clamp)
    [parameters]                  # firmware config keys; the grid is their product
    pitch_rate_kp = [1.0, 1.5, 2.0]
    roll_rate_kd_ms = [60.0, 100.0]

Rows come back in grid order whatever order the workers finish in; a run
that fails gives a row with its ``error`` and empty metrics instead of
stopping the sweep. Library use::

    grid = load_grid("grid.toml")
    rows = run_grid(grid, workers=2)        # list of dicts, one per run
    write_csv(rows, "sweep.csv")
"""

import csv
import itertools
import json
import os
import sys
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

METRICS = ("camera_jitter_rms_deg", "handle_motion_rms_deg", "max_motor_effort", "tracking_rms_frac",
           "tracking_lost_frac", "faults", "realtime_factor", "wall_seconds")


class GridError(ValueError):
    """A grid file that cannot be run; the message names the key and the fix."""


class Grid:
    """Validated sweep grid: ``runs()`` lists one dict per run (scenario, seed, params)."""

    def __init__(self, scenarios, seeds=(0,), parameters=None, seconds=None, firmware="inprocess", phone_mass_kg=None):
        from opensteady.sim.board_config import board_config
        from opensteady.sim.scenario import ScenarioError, load_scenario

        if not scenarios or not all(isinstance(s, str) for s in scenarios):
            raise GridError("scenarios: give a non-empty list of scenario names or .toml paths")
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise GridError("seeds: give a non-empty list of integers, e.g. seeds = [0, 1, 2]")
        if firmware not in ("inprocess", "micropython", "compiled"):
            raise GridError("firmware = %r: expected \"inprocess\", \"micropython\" or \"compiled\"" % (firmware,))
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                    or not seconds > 0):
            raise GridError("seconds = %r: must be a positive number" % (seconds,))
        if phone_mass_kg is not None:
            from opensteady.sim.scenario import PhoneParams

            try:
                PhoneParams(mass_kg=phone_mass_kg).validate()
            except (ValueError, TypeError) as exc:
                raise GridError("phone_mass_kg: %s" % exc) from None
        parameters = dict(parameters or {})
        for name, values in parameters.items():
            if not isinstance(values, list) or not values:
                raise GridError("parameters.%s: give a non-empty list of values, e.g. %s = [1.0, 2.0]"
                                % (name, name))
            for v in values:
                try:
                    board_config({name: v})
                except ValueError as exc:
                    raise GridError("parameters.%s: %s" % (name, exc)) from None
        for name in scenarios:
            try:
                sc = load_scenario(name)
            except ScenarioError as exc:
                raise GridError("scenarios: %s" % exc) from None
            if seconds is not None and not seconds > sc.warmup_s:
                raise GridError("seconds = %r: must be longer than %s's warm-up of %g s" % (seconds, name, sc.warmup_s))
        self.scenarios = list(scenarios)
        self.seeds = list(seeds)
        self.parameters = parameters
        self.seconds = seconds
        self.firmware = firmware
        self.phone_mass_kg = phone_mass_kg

    def runs(self):
        names = sorted(self.parameters)
        combos = list(itertools.product(*(self.parameters[n] for n in names))) or [()]
        out = []
        for scenario in self.scenarios:
            for combo in combos:
                for seed in self.seeds:
                    out.append({"scenario": scenario, "seed": seed, "params": dict(zip(names, combo)),
                                "seconds": self.seconds, "firmware": self.firmware, "phone_mass_kg": self.phone_mass_kg})
        return out


def load_grid(path):
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise GridError("cannot read grid file %r: %s" % (path, exc.strerror or exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError("grid file %r: bad TOML: %s" % (path, exc)) from None
    known = {"scenarios", "seeds", "parameters", "seconds", "firmware", "phone_mass_kg"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise GridError("grid file %r: unknown key(s) %s (known: %s)" % (path, ", ".join(unknown),
                                                                         ", ".join(sorted(known))))
    if "scenarios" not in doc:
        raise GridError("grid file %r: missing scenarios = [...]" % path)
    return Grid(doc["scenarios"], doc.get("seeds", [0]), doc.get("parameters"), doc.get("seconds"),
                doc.get("firmware", "inprocess"), doc.get("phone_mass_kg"))


def run_one(run):
    """One grid point on whichever process runs it: a flat row of inputs and metrics."""
    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario

    row = {"scenario": run["scenario"], "seed": run["seed"]}
    row.update(run["params"])
    try:
        base = load_scenario(run["scenario"])
        firmware = dict(base.firmware)
        firmware.update(run["params"])
        overrides = {"firmware": tuple(sorted(firmware.items()))}
        if run["seconds"] is not None:
            overrides["seconds"] = float(run["seconds"])
        if run.get("phone_mass_kg") is not None:
            from opensteady.sim.scenario import PhoneParams

            overrides["phone"] = PhoneParams(mass_kg=float(run["phone_mass_kg"]))
        scenario = load_scenario(run["scenario"], overrides=overrides)
        m = run_scenario(scenario, firmware=run["firmware"], seed=run["seed"]).metrics
        for k in METRICS:
            v = m.get(k)
            row[k] = "|".join(v) if isinstance(v, list) else v
        row["error"] = ""
    except Exception as exc:  # noqa: BLE001 - one bad grid point must not stop the sweep
        for k in METRICS:
            row[k] = None
        row["error"] = "%s: %s" % (type(exc).__name__, exc)
    return row


def _client(address, workers):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise GridError("opensteady sweep needs Dask distributed (Python >= 3.10 for current releases): "
                        "pip install 'opensteady[sweep]'") from None
    if address:
        try:
            return Client(address, timeout=30), None
        except (OSError, TimeoutError) as exc:
            raise GridError("cannot reach the Dask scheduler at %s: %s (start one with `dask scheduler`)"
                            % (address, exc)) from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def run_grid(grid, address=None, workers=None, progress=None):
    """Run every grid point on Dask; returns rows in grid order. ``progress(done, total)`` is called as runs end."""
    from dask.distributed import as_completed

    runs = grid.runs()
    workers = workers or os.cpu_count() or 1
    client, cluster = _client(address, workers)
    try:
        futures = client.map(run_one, runs, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        rows = [None] * len(runs)
        done = 0
        for fut, row in as_completed(futures, with_results=True):
            rows[index[fut.key]] = row
            done += 1
            if progress:
                progress(done, len(runs))
        return rows
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_serial(grid, progress=None):
    """The same grid in a plain loop in this process (the speed-up's reference)."""
    runs = grid.runs()
    rows = []
    for k, run in enumerate(runs):
        rows.append(run_one(run))
        if progress:
            progress(k + 1, len(runs))
    return rows


def write_csv(rows, path):
    cols = []
    for row in rows:
        for k in row:
            if k not in cols:
                cols.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in cols})
    return path


def summarise(rows, params, metric="camera_jitter_rms_deg"):
    """Per (scenario, parameter values): [mean, min, max, n] of ``metric`` over seeds (failed runs skipped)."""
    groups = {}
    for row in rows:
        v = row.get(metric)
        if v is None or row.get("error"):
            continue
        key = (row["scenario"],) + tuple(row.get(p) for p in params)
        groups.setdefault(key, []).append(float(v))
    return {k: [sum(v) / len(v), min(v), max(v), len(v)] for k, v in groups.items()}


def plot_summary(rows, params, path, metric="camera_jitter_rms_deg"):
    """Mean and seed range of ``metric`` for each parameter combination, one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(rows, params, metric)
    scenarios = sorted({k[0] for k in summary})
    if not scenarios:
        raise GridError("no run produced %s: nothing to plot" % metric)
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(9, 2.6 * len(scenarios) + 0.6), squeeze=False)
    for ax, sc in zip(axes[:, 0], scenarios):
        keys = sorted(k for k in summary if k[0] == sc)
        labels = [", ".join("%s=%g" % (p, v) for p, v in zip(params, k[1:])) or "defaults" for k in keys]
        mean = [summary[k][0] for k in keys]
        lo = [summary[k][0] - summary[k][1] for k in keys]
        hi = [summary[k][2] - summary[k][0] for k in keys]
        x = list(range(len(keys)))
        ax.bar(x, mean, color="#4c72b0")
        ax.errorbar(x, mean, yerr=[lo, hi], fmt="none", ecolor="k", capsize=3)
        best = min(range(len(keys)), key=lambda i: mean[i])
        ax.bar([best], [mean[best]], color="#dd8452")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(metric.replace("_", " "), fontsize=8)
        ax.set_title("%s (bar: mean over seeds, whiskers: min-max; orange: best)" % sc, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- the command line ------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("grid", help="grid file (TOML: scenarios, seeds, seconds, [parameters])")
    parser.add_argument("--out", default="sweep.csv", help="CSV file, one row per run (default: %(default)s)")
    parser.add_argument("--plot", metavar="OUT.png", help="summary plot of camera_jitter_rms_deg")
    parser.add_argument("--address", help="an existing Dask scheduler (tcp://HOST:8786); default: a local cluster")
    parser.add_argument("--workers", type=int, help="local cluster worker processes (default: one per core)")
    parser.add_argument("--compare-serial", action="store_true",
                        help="also run the grid in a plain loop in this process and report the speed-up")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")


def _bar(label):
    def show(done, total):
        if sys.stderr.isatty():
            sys.stderr.write("\r%s %d/%d runs" % (label, done, total))
            sys.stderr.flush()
    return show


def run(args):
    try:
        grid = load_grid(args.grid)
        if args.workers is not None and args.workers < 1:
            raise GridError("--workers %d: need at least 1" % args.workers)
        out_dir = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(out_dir):
            raise GridError("cannot write %r: its folder does not exist" % args.out)
        t0 = time.perf_counter()
        rows = run_grid(grid, address=args.address, workers=args.workers, progress=_bar("dask"))
        wall = time.perf_counter() - t0
    except GridError as exc:
        print("opensteady sweep: error: %s" % exc, file=sys.stderr)
        return 2
    summary = {"runs": len(rows), "failed": sum(1 for r in rows if r["error"]), "wall_seconds": round(wall, 3),
               "where": args.address or "local cluster, %d workers" % (args.workers or os.cpu_count() or 1)}
    if args.compare_serial:
        t0 = time.perf_counter()
        run_serial(grid, progress=_bar("serial"))
        serial = time.perf_counter() - t0
        summary["serial_wall_seconds"] = round(serial, 3)
        summary["speedup"] = round(serial / wall, 2) if wall > 0 else None
    write_csv(rows, args.out)
    summary["csv"] = args.out
    params = sorted(grid.parameters)
    best = summarise(rows, params)
    if best:
        k = min(best, key=lambda k: best[k][0])
        summary["best"] = {"scenario": k[0], "params": dict(zip(params, k[1:])),
                           "camera_jitter_rms_deg": round(best[k][0], 5)}
    if args.plot:
        summary["plot"] = plot_summary(rows, params, args.plot)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    for k, v in summary.items():
        print("%-20s %s" % (k, v), file=sys.stderr if args.json else sys.stdout)
    for row in rows:
        if row["error"]:
            print("failed: %s seed %s: %s" % (row["scenario"], row["seed"], row["error"]), file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    return 1 if summary["failed"] else 0
