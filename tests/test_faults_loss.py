"""Byte loss on the serial link: tracking stays close to the lossless run (issue 11).

The real host loop, MediaPipe on the virtual camera, the firmware in lockstep
on the MuJoCo plant; 1 % of the bytes dropped in each direction, so about a
third of the telemetry frames never arrive. `opensteady bench faults --only
loss` runs the long version (seeds 0-2, 0/1/5 %) for docs/benchmarks.md.
"""

import numpy as np

from opensteady.host import faultbench


def test_one_percent_byte_loss_tracks_within_1_3x_of_lossless_with_telemetry_lined_up_by_time():
    lossless = faultbench.loss_run(0.0, seed=0).metrics
    seen = []  # (capture time, yaw the pipeline was given), per frame

    def on_step(step):
        given = step.out.telemetry
        seen.append((step.frame.capture_s, given["yaw_deg"] if given else None))

    lossy = faultbench.loss_run(0.01, seed=0, on_step=on_step)
    m = lossy.metrics
    assert m["link_bytes_dropped"] > 200 and m["telemetry_frames"] < 0.8 * lossless["telemetry_frames"]
    assert lossless["faults"] == [] and "joint_limit" not in m["faults"]
    assert m["tracking_rms_frac"] <= 1.3 * lossless["tracking_rms_frac"], (m["tracking_rms_frac"], lossless)
    # Each frame was given the camera's attitude at its capture time, so the camera motion between two
    # frames (what the tracker discounts) matches the true motion; the residual is the 8-12 Hz tremor that
    # 50 Hz telemetry cannot resolve. "The latest sample" instead: rms 0.74 deg, p90 1.3 deg on this run.
    t = lossy.series["t_s"]
    true_yaw = lossy.series["camera_ypr_deg"][:, 0]
    errors = []
    for (t0, yaw0), (t1, yaw1) in zip(seen, seen[1:]):
        if yaw0 is not None and yaw1 is not None and t0 >= 2.0:
            errors.append((yaw1 - yaw0) - (np.interp(t1, t, true_yaw) - np.interp(t0, t, true_yaw)))
    assert len(errors) > 0.8 * (len(seen) - 60)
    rms = float(np.sqrt(np.mean(np.square(errors))))
    assert rms < 0.45 and np.percentile(np.abs(errors), 90) < 0.8, rms
