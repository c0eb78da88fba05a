"""Plot one run so a newcomer sees at a glance what happened (matplotlib, no display).

With a camera in the scenario, the top panels show what a user cares about:
where the tracked face was in the picture over time (left-right and up-down,
as a fraction of the frame) against the calibration point it should sit on,
for OpenSteady and, when given, the naive baseline on the same run; then how
far it was from that point. Below: the camera's attitude against the handle's
(stabilisation) and the motors' effort. The shaded start is the warm-up (boot,
gyro calibration, lock-on), which is not scored.

    path = plot_run(result, scenario, "out.png", baseline=baseline_result)
"""

import numpy as np

AXES = ("yaw", "pitch", "roll")
OURS, BASE, CAL = "tab:blue", "tab:orange", "tab:green"


def _face_fraction(result, scenario):
    s = result.series
    face = np.asarray(s["face_px"], dtype=float).reshape(-1, 2)
    x = face[:, 0] / scenario.camera.width
    y = face[:, 1] / scenario.camera.height
    in_view = np.asarray(s["in_view"], dtype=bool)
    return np.where(in_view, x, np.nan), np.where(in_view, y, np.nan)


def _label(name, m):
    rms = m.get("tracking_rms_frac")
    return "%s (RMS %s frame widths)" % (name, "-" if rms is None else "%.3f" % rms)


def plot_run(result, scenario, path, baseline=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.series
    m = result.metrics
    vision = len(s.get("frame_t_s", ())) > 0
    rows = 5 if vision else 3
    fig, ax = plt.subplots(rows, 1, figsize=(10, 2.6 * rows + 1), sharex=True)
    fig.suptitle("OpenSteady simulation: %s\n%s" % (scenario.name, scenario.description), fontsize=10)
    row = 0
    if vision:
        cal = m.get("calibration_point") or (0.5, 0.5)
        runs = [("OpenSteady", OURS, result)] + ([("baseline (naive tracker)", BASE, baseline)] if baseline else [])
        for k, (axis_name, what) in enumerate((("left-right", "x"), ("up-down", "y"))):
            a = ax[row + k]
            for name, colour, r in runs:
                pos = _face_fraction(r, scenario)[k]
                a.plot(r.series["frame_t_s"], pos, color=colour, label=name + ": face " + what)
            a.axhline(cal[k], color=CAL, linestyle="--", label="calibration point (where the face should be)")
            a.set_ylim(0, 1)
            a.set_ylabel("face %s\n(0 = %s, 1 = %s)" % (axis_name, "left" if k == 0 else "top",
                                                          "right" if k == 0 else "bottom"))
            a.set_title("Where the face was in the picture, %s" % axis_name, fontsize=9, loc="left")
        a = ax[row + 2]
        for name, colour, r in runs:
            fx, fy = _face_fraction(r, scenario)
            d = np.hypot((fx - cal[0]) * scenario.camera.width, (fy - cal[1]) * scenario.camera.height)
            a.plot(r.series["frame_t_s"], d / scenario.camera.width, color=colour, label=_label(name, r.metrics))
        a.set_ylabel("distance from the\ncalibration point\n(frame widths)")
        a.set_title("Tracking error: lower is better (0 = the face exactly on the calibration point)",
                    fontsize=9, loc="left")
        row += 3
    t = s["t_s"]
    colours = ("tab:blue", "tab:orange", "tab:green")
    for i, name in enumerate(AXES):
        ax[row].plot(t, s["camera_ypr_deg"][:, i], color=colours[i], label="camera " + name)
        ax[row].plot(t, s["handle_ypr_deg"][:, i], color=colours[i], alpha=0.4, linestyle=":",
                     label="handle " + name)
        ax[row + 1].plot(t, s["effort"][:, i], color=colours[i], label=name + " motor")
    ax[row].set_ylabel("attitude (deg)")
    ax[row].set_title("Camera (solid) against the hand-held handle (dotted): the gap is what the gimbal removes",
                      fontsize=9, loc="left")
    ax[row + 1].set_ylabel("motor effort\n(|torque| / peak)")
    ax[row + 1].set_title("Motor effort: below 1 means the motors have torque to spare", fontsize=9, loc="left")
    if not vision:
        err = s["camera_ypr_deg"] - (s["commanded_ypr_deg"] if len(s["commanded_ypr_deg"]) else s["camera_ypr_deg"])
        for i, name in enumerate(AXES):
            ax[2].plot(t, (err[:, i] + 180.0) % 360.0 - 180.0, color=colours[i], label=name)
        ax[2].set_ylabel("camera - commanded\n(deg)")
        ax[2].set_title("Stabilisation error: lower is better", fontsize=9, loc="left")
    ax[-1].set_xlabel("simulated time (s)")
    for a in ax:
        a.axvspan(0, scenario.warmup_s, color="grey", alpha=0.15, label="warm-up: boot and calibration (not scored)"
                  if a is ax[0] else None)
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
