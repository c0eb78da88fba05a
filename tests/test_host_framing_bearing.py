"""The subject-motion estimator: the subject's rate from its earth-frame bearing (camera attitude at the
frame's capture + its angle in the picture), so the camera's own motion never reads as subject motion.

Deterministic, on simulated time, no vision model and no sleeps: the "camera" is a rate-following gimbal
behind a few frames of delay that may also shake, the subject a point on a scripted angular path.
"""

import math
import random

import pytest

from opensteady.host.framing import BearingEstimator, FramingConfig, FramingController, FramingTarget

DT = 1 / 30
HFOV = 70.0
ON = dict(motion_noise=1e4, max_accel_dps2=1200.0)  # the defaults (see FramingConfig), spelt out


def project_x(world_yaw_deg, camera_yaw_deg, hfov_deg=HFOV):
    t = math.tan(math.radians(hfov_deg) / 2)
    return 0.5 + 0.5 * math.tan(math.radians(world_yaw_deg - camera_yaw_deg)) / t


def crossing(t_s, rate_dps=60.0, start_s=1.0, stop_s=2.0):
    """Stands, walks at ``rate_dps`` from start_s to stop_s, stands again."""
    return rate_dps * (min(max(t_s, start_s), stop_s) - start_s)


def test_the_rate_of_a_steady_subject_is_found_through_detection_noise():
    rng = random.Random(1)
    est = BearingEstimator(motion_noise=1e4, bearing_noise_deg=0.3)
    rates = [est.update(25.0 * i * DT + rng.gauss(0.0, 0.3), DT) for i in range(60)]
    assert abs(sum(rates[30:]) / 30 - 25.0) < 2.0
    # frame-to-frame noise of the rate: about what a 0.3 deg jitter differentiated over a few frames gives
    assert math.sqrt(sum((r - 25.0) ** 2 for r in rates[30:]) / 30) < 8.0


def test_a_stop_is_seen_within_a_few_frames():
    est = BearingEstimator(motion_noise=1e4, bearing_noise_deg=0.3)
    for i in range(60):
        est.update(60.0 * i * DT, DT)
    stopped_at = 60.0 * 59 * DT
    rates = [est.update(stopped_at, DT) for _ in range(5)]
    # after 4 frames (133 ms) less than a fifth of the old rate is left; a 50 ms low-pass on a
    # velocity that itself lags (the old path) still carried about half
    assert abs(rates[3]) < 12.0


def test_bearings_wrap_the_short_way_round():
    est = BearingEstimator(motion_noise=1e4, bearing_noise_deg=0.3)
    for i in range(40):
        est.update((170.0 + 30.0 * i * DT + 180.0) % 360.0 - 180.0, DT)  # crosses +180 -> -180
    assert abs(est.rate_dps - 30.0) < 3.0


def test_the_rate_hint_starts_the_estimate():
    est = BearingEstimator(motion_noise=1e4, bearing_noise_deg=0.3)
    assert est.update(10.0, DT, rate_hint_dps=42.0) == 42.0
    est.reset()
    assert est.update(10.0, DT) == 0.0


def follow(path, seconds, config=None, delay_frames=2, shake_deg=0.0, with_attitude=True, subject_id=lambda t: 1):
    """Closed loop on ``path(t_s) -> subject yaw``; returns (yaw errors as the frames saw them, feed-forwards).

    Without attitude the feed-forward is the exact rate + nothing (the tracker's job), with attitude
    it is the controller's own estimate from the bearing. ``shake_deg``: the camera also shakes by
    this much at 4.5 Hz (the open-loop motor's ringing), which the bearing must not read as motion.
    """
    ctl = FramingController(config or FramingConfig(**ON))
    cam_yaw = 0.0
    queue = [0.0] * delay_frames
    errors, ffs = [], []
    for i in range(int(round(seconds / DT))):
        t = i * DT
        shaken = cam_yaw + shake_deg * math.sin(2 * math.pi * 4.5 * t)
        subject = path(t)
        target = FramingTarget(locked=True, x=project_x(subject, shaken), y=0.5,
                               camera_yaw_deg=shaken if with_attitude else None, camera_pitch_deg=0.0,
                               subject_id=subject_id(t))
        cmd = ctl.update(target, DT)
        errors.append(subject - shaken)
        ffs.append(ctl.yaw.ff_dps)
        queue.append(cmd.yaw_rate_dps)
        cam_yaw += queue.pop(0) * DT
    return errors, ffs


def test_a_fast_crossing_is_followed_from_the_bearing_alone():
    errors, _ = follow(crossing, 3.5)
    # during the walk (after it got going) and after the stop (once settled) the subject is framed
    walking = errors[int(1.5 / DT):int(2.0 / DT)]
    settled = errors[int(2.7 / DT):]
    assert max(abs(e) for e in walking) < 1.5
    assert max(abs(e) for e in settled) < 1.0
    # the starts and stops cost some degrees (frame delay, the acceleration limit) but far less
    # than a loop that must build up an error to move
    no_ff, _ = follow(crossing, 3.5, config=FramingConfig(feedforward=0.0, **ON))
    assert max(abs(e) for e in errors) < 10.0 < max(abs(e) for e in no_ff)


def test_the_cameras_own_shaking_is_not_read_as_subject_motion():
    # A subject standing still while the camera rings: the bearing stays put, so the feed-forward
    # stays near zero and the controller does not chase its own ringing.
    ctl = FramingController(FramingConfig(deadband_deg=0.0, **ON))
    for i in range(90):
        t = i * DT
        cam = 2.0 * math.sin(2 * math.pi * 4.5 * t)
        ctl.update(FramingTarget(locked=True, x=project_x(5.0, cam), y=0.5, camera_yaw_deg=cam,
                                 camera_pitch_deg=0.0), DT)
    assert abs(ctl.yaw.ff_dps) < 3.0  # the image moves at up to 56 deg/s


def test_someone_else_followed_restarts_the_estimate_instead_of_a_rate_spike():
    # At 1.5 s the lock moves to a person standing 20 deg to the right. Read as motion, that jump
    # would feed forward a rate of hundreds of deg/s; as a new subject, only the PID turns towards them.
    def path(t):
        return 0.0 if t < 1.5 else 20.0

    _, ff_new = follow(path, 2.0, subject_id=lambda t: 1 if t < 1.5 else 2)
    _, ff_same = follow(path, 2.0)
    jump = slice(int(1.5 / DT), int(1.7 / DT))
    assert max(abs(f) for f in ff_same[jump]) > 100.0  # what the restart prevents
    assert max(abs(f) for f in ff_new[jump]) < 20.0


def test_without_attitude_the_trackers_rate_is_fed_forward_as_before():
    # no camera_yaw_deg: the estimator stays unused, the tracker's rate is what counts
    ctl = FramingController(FramingConfig(**ON))
    ctl.update(FramingTarget(locked=True, x=0.6, y=0.5, yaw_rate_ff_dps=0.0), DT)
    ctl.update(FramingTarget(locked=True, x=0.6, y=0.5, yaw_rate_ff_dps=20.0), DT)
    assert ctl.yaw.motion.bearing_deg is None  # low-passed over feedforward_smoothing_s:
    assert ctl.yaw.ff_dps == pytest.approx(20.0 * DT / (0.05 + DT))


def test_a_bearing_from_an_attitude_interpolated_across_lost_telemetry_counts_for_less():
    """A subject crossing at 30 deg/s on a camera shaking 1 deg at 4.5 Hz; every third frame's attitude is
    interpolated across lost telemetry (samples 60 ms apart) and is 0.5 deg off. Its bearing is trusted less
    (camera_accel_dps2 * span^2 / 8 = 0.5 deg of extra noise), so the rate stays nearer the subject's than
    when every bearing counts the same."""
    def run(config):
        ctl = FramingController(config)
        rates = []
        for i in range(90):
            t = i * DT
            cam = 1.0 * math.sin(2 * math.pi * 4.5 * t)
            lost = i % 3 == 2
            target = FramingTarget(locked=True, x=project_x(30.0 * t, cam), y=0.5, yaw_rate_ff_dps=30.0,
                                   camera_yaw_deg=cam + (0.5 if lost else 0.0), camera_pitch_deg=0.0,
                                   camera_attitude_span_s=0.06 if lost else 0.02)
            ctl.update(target, DT)
            rates.append(ctl.yaw.ff_dps)
        return [abs(r - 30.0) for r in rates[30:]]
    weighed = run(FramingConfig(**ON))
    same = run(FramingConfig(camera_accel_dps2=0.0, **ON))
    assert max(weighed) < 0.8 * max(same) and sum(weighed) < 0.65 * sum(same)  # 7.5 vs 10.5, 4.0 vs 7.0 deg/s
    assert FramingConfig().camera_accel_dps2 * 0.02 ** 2 / 8 < 0.06  # at 50 Hz telemetry: hardly any


def test_on_by_default_and_motion_noise_0_turns_it_off():
    for config, used in ((FramingConfig(), True), (FramingConfig(motion_noise=0.0), False)):
        ctl = FramingController(config)
        for i in range(3):
            ctl.update(FramingTarget(locked=True, x=0.6, y=0.5, yaw_rate_ff_dps=20.0, camera_yaw_deg=10.0 * i,
                                     camera_pitch_deg=0.0), DT)
        assert (ctl.yaw.motion.bearing_deg is not None) == used


@pytest.mark.parametrize("key, value", [("motion_noise", -1.0), ("bearing_noise_deg", 0.0), ("camera_accel_dps2", -1.0)])
def test_estimator_settings_are_validated(key, value):
    with pytest.raises(ValueError, match=key):
        FramingConfig(**{key: value}).validate()
