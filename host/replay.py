"""Turn a session log (JSON lines from ``opensteady track --log``) into plots.

    opensteady replay session.jsonl --plot session.png

Panels: the target's position against the calibration point; the yaw and
pitch setpoints with the framing controller's angular error; the gimbal's
attitude from telemetry (when the driver reported any); per-frame pipeline
and end-to-end latency.
"""

import sys


def add_arguments(parser):
    parser.add_argument("log", help="session log written by `opensteady track --log` (JSON lines)")
    parser.add_argument("--plot", metavar="OUT.png", help="write the plots to this image file")


def _frames(records):
    """The frame records that carry a numeric time (anything else in a damaged log is left out)."""
    return [r for r in records if r["type"] == "frame" and isinstance(r.get("t_s"), (int, float))]


def summarise(records):
    frames = _frames(records)
    with_target = sum(1 for r in frames
                      if isinstance(r.get("target"), dict) and r["target"].get("source") in ("face", "body"))
    return {"frames": len(frames), "frames_with_target": with_target,
            "duration_s": (frames[-1]["t_s"] - frames[0]["t_s"]) if len(frames) > 1 else 0.0}


def plot(records, out_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = _frames(records)
    if not frames:
        raise ValueError("the log has no frame records to plot")
    t = [r["t_s"] - frames[0]["t_s"] for r in frames]

    def series(get):
        out = []
        for r in frames:
            try:
                v = get(r)
            except (KeyError, TypeError, IndexError):
                v = None
            out.append(v if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan"))
        return out

    seen = [isinstance(r.get("target"), dict) and r["target"].get("source") in ("face", "body") for r in frames]
    tx = [v if s else float("nan") for v, s in zip(series(lambda r: r["target"]["x"]), seen)]
    ty = [v if s else float("nan") for v, s in zip(series(lambda r: r["target"]["y"]), seen)]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    ax = axes[0]
    ax.plot(t, tx, label="target x")
    ax.plot(t, ty, label="target y")
    ax.plot(t, series(lambda r: r["calibration_point"][0]), "--", label="calibration x")
    ax.plot(t, series(lambda r: r["calibration_point"][1]), "--", label="calibration y")
    ax.set_ylabel("normalised")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("target and calibration point")
    ax = axes[1]
    ax.plot(t, series(lambda r: r["setpoint"]["yaw_rate_dps"]), label="yaw rate setpoint (deg/s)")
    ax.plot(t, series(lambda r: r["setpoint"]["pitch_rate_dps"]), label="pitch rate setpoint (deg/s)")
    ax.plot(t, series(lambda r: r["setpoint"]["yaw_error_deg"]), ":", label="yaw error (deg)")
    ax.plot(t, series(lambda r: r["setpoint"]["pitch_error_deg"]), ":", label="pitch error (deg)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("framing controller")
    ax = axes[2]
    if any(r.get("telemetry") for r in frames):
        for axis in ("yaw", "pitch", "roll"):
            ax.plot(t, series(lambda r, a=axis: r["telemetry"][a + "_deg"]), label=axis + " (deg)")
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no telemetry in this log (--gimbal none?)", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("gimbal attitude from telemetry")
    ax = axes[3]
    ax.plot(t, series(lambda r: r["latency_ms"]["total"]), label="pipeline (ms)")
    ax.plot(t, series(lambda r: r["e2e_ms"]), label="capture to bytes written (ms)")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("latency")
    fig.tight_layout()
    fig.savefig(out_path, dpi=80)
    plt.close(fig)


MAX_PROBLEMS_SHOWN = 5


def run(args):
    from opensteady.host.errors import EXIT_USAGE, CommandError, check_output_folder
    from opensteady.host.session_log import read_log

    if args.plot:
        check_output_folder(args.plot, "plot")
    try:
        records, problems = read_log(args.log)
    except OSError as exc:
        raise CommandError("cannot read %s: %s" % (args.log, exc.strerror or exc)) from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        print(problem, file=sys.stderr)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        print("... and %d more lines skipped" % (len(problems) - MAX_PROBLEMS_SHOWN), file=sys.stderr)
    if not records:
        raise CommandError("%s has no session records (%d lines skipped): a session log is the JSON lines file "
                           "`opensteady track --log` writes" % (args.log, len(problems)), EXIT_USAGE)
    summary = summarise(records)
    print("%s: %d frames, %d with the target seen, %.1f s"
          % (args.log, summary["frames"], summary["frames_with_target"], summary["duration_s"]))
    if args.plot:
        try:
            plot(records, args.plot)
        except ValueError as exc:
            raise CommandError("cannot plot %s: %s" % (args.log, exc)) from None
        except OSError as exc:
            raise CommandError("cannot write the plot %s: %s" % (args.plot, exc.strerror or exc)) from None
        print("wrote %s" % args.plot)
    return 0
