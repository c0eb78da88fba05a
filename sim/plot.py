"""Plot one run: attitude, setpoint, error and motor effort against simulated time (matplotlib, no display).

    path = plot_run(result, scenario, "out.png")
"""

import numpy as np

from opensteady.sim.metrics import wrap_deg

AXES = ("yaw", "pitch", "roll")


def plot_run(result, scenario, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.series
    m = result.metrics
    t = s["t_s"]
    fig, ax = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    title = "%s (%s firmware, seed %s)" % (scenario.name, m.get("firmware"), m.get("seed"))
    fig.suptitle(title)
    colours = ("tab:blue", "tab:orange", "tab:green")
    for i, name in enumerate(AXES):
        ax[0].plot(t, s["camera_ypr_deg"][:, i], color=colours[i], label="camera " + name)
        ax[0].plot(t, s["handle_ypr_deg"][:, i], color=colours[i], alpha=0.35, linestyle=":", label="handle " + name)
        if len(s["commanded_ypr_deg"]):
            ax[1].plot(t, s["commanded_ypr_deg"][:, i], color=colours[i], label="commanded " + name)
            err = wrap_deg(s["camera_ypr_deg"][:, i] - s["commanded_ypr_deg"][:, i])
            ax[2].plot(t, err, color=colours[i], label=name + " camera - commanded")
        ax[3].plot(t, s["effort"][:, i], color=colours[i], label=name)
    ax[0].set_ylabel("attitude (deg)")
    ax[1].set_ylabel("setpoint (deg)")
    ax[2].set_ylabel("error (deg)")
    ax[3].set_ylabel("motor effort\n(|torque| / peak)")
    ax[3].set_xlabel("simulated time (s)")
    if len(s["frame_t_s"]):
        w = scenario.camera.width
        h = scenario.camera.height
        cal = np.array([0.5 * w, 0.5 * h])
        d = np.linalg.norm(s["face_px"] - cal, axis=1) / w
        d = np.where(s["in_view"], d, np.nan)
        twin = ax[2].twinx()
        twin.plot(s["frame_t_s"], d, color="tab:red", alpha=0.7, label="face from calibration point")
        twin.set_ylabel("tracking error\n(frame widths)", color="tab:red")
    for a in ax:
        a.axvline(scenario.warmup_s, color="grey", linewidth=0.8)
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="upper left", ncol=3)
    summary = "tracking_rms_frac=%s  lost=%s  jitter=%s deg  handle=%s deg  effort=%s" % (
        m.get("tracking_rms_frac"), m.get("tracking_lost_frac"), m.get("camera_jitter_rms_deg"),
        m.get("handle_motion_rms_deg"), m.get("max_motor_effort"))
    fig.text(0.5, 0.005, summary, ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
