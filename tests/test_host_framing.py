"""Framing controller and calibration point: pure maths driven with simulated time."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensteady.firmware import protocol
from opensteady.host.calibration import CameraMapping, fit_mapping, parse_point
from opensteady.host.framing import (
    FramingConfig,
    FramingController,
    FramingTarget,
    SetpointCommand,
    offset_to_angle_deg,
)

DT = 1 / 30


def project_x(world_yaw_deg, camera_yaw_deg, hfov_deg):
    """Normalised image x of a point at world_yaw_deg seen by a pinhole camera at camera_yaw_deg."""
    t = math.tan(math.radians(hfov_deg) / 2)
    return 0.5 + 0.5 * math.tan(math.radians(world_yaw_deg - camera_yaw_deg)) / t


def test_pinhole_angle_edges_and_centre():
    assert offset_to_angle_deg(1.0, 0.5, 70.0) == pytest.approx(35.0)
    assert offset_to_angle_deg(0.0, 0.5, 70.0) == pytest.approx(-35.0)
    assert offset_to_angle_deg(0.5, 0.5, 70.0) == 0.0
    # relative to a thirds point, an edge is less than half the FOV away
    assert offset_to_angle_deg(1.0, 2 / 3, 70.0) < 35.0


def test_closed_loop_brings_subject_to_calibration_point_with_little_overshoot():
    cfg = FramingConfig()
    ctl = FramingController(cfg)
    cam_yaw = 0.0
    subject_yaw = 20.0  # subject 20 deg right of the camera
    cal_x = 1 / 3
    xs = []
    for _ in range(int(6 / DT)):
        x = project_x(subject_yaw, cam_yaw, cfg.hfov_deg)
        cmd = ctl.update(FramingTarget(locked=True, x=x, y=0.5, cal_x=cal_x), DT)
        cam_yaw += cmd.yaw_rate_dps * DT
        xs.append(x)
    final_err_deg = offset_to_angle_deg(xs[-1], cal_x, cfg.hfov_deg)
    assert abs(final_err_deg) <= cfg.deadband_deg + 0.3
    assert cmd.yaw_rate_dps == 0.0 and cmd.state == "deadband"
    # subject started 20 deg right of the calibration point and went at most 4 deg past it
    assert offset_to_angle_deg(min(xs), cal_x, cfg.hfov_deg) > -4.0


def test_deadband_stops_cleanly_with_no_integral_creep():
    # closed loop: the camera turns at the commanded rate until the subject is centred
    cfg = FramingConfig(deadband_deg=1.0)
    ctl = FramingController(cfg)
    cam_yaw, subject_yaw = 0.0, 15.0
    rates = []
    for _ in range(int(60 / DT)):  # a minute of simulated time
        x = project_x(subject_yaw, cam_yaw, cfg.hfov_deg)
        cmd = ctl.update(FramingTarget(locked=True, x=x, y=0.5), DT)
        cam_yaw += cmd.yaw_rate_dps * DT
        rates.append(cmd.yaw_rate_dps)
    first_zero = rates.index(0.0)
    assert first_zero < int(3 / DT)
    assert all(r == 0.0 for r in rates[first_zero:])  # stopped for good: no creep
    assert ctl.yaw.pid.components[1] == 0.0
    assert abs(subject_yaw - cam_yaw) <= cfg.deadband_deg + 0.5


def test_constant_offset_inside_the_deadband_never_moves_the_gimbal():
    ctl = FramingController(FramingConfig(deadband_deg=1.0, ki=10.0))
    x_inside = 0.5 + 0.5 * math.tan(math.radians(0.9)) / math.tan(math.radians(35))
    cmds = [ctl.update(FramingTarget(locked=True, x=x_inside, y=0.5), DT) for _ in range(3000)]
    assert all(c.yaw_rate_dps == 0.0 and c.state == "deadband" for c in cmds)


def test_a_moving_subject_is_followed_through_the_deadband():
    # subject crossing at 20 deg/s: the gimbal keeps turning with it and the lag shrinks
    cfg = FramingConfig()
    ctl = FramingController(cfg)
    cam_yaw = 0.0
    errors, rates = [], []
    for i in range(int(6 / DT)):
        subject_yaw = 20.0 * i * DT
        x = project_x(subject_yaw, cam_yaw, cfg.hfov_deg)
        cmd = ctl.update(FramingTarget(locked=True, x=x, y=0.5), DT)
        cam_yaw += cmd.yaw_rate_dps * DT
        errors.append(subject_yaw - cam_yaw)
        rates.append(cmd.yaw_rate_dps)
    assert max(abs(e) for e in errors[-60:]) < 6.0
    assert abs(errors[-1]) < abs(errors[60])
    assert min(rates[30:]) > 10.0  # never stopped while the subject kept moving


def test_motion_restarts_smoothly_at_the_deadband_edge():
    cfg = FramingConfig(deadband_deg=1.0, smoothing_s=0.0, max_accel_dps2=300.0)
    just_outside = 0.5 + 0.5 * math.tan(math.radians(1.05)) / math.tan(math.radians(35))
    cmd = FramingController(cfg).update(FramingTarget(locked=True, x=just_outside, y=0.5), DT)
    assert 0 < cmd.yaw_rate_dps <= cfg.max_accel_dps2 * DT


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.booleans()), min_size=2, max_size=80),
       st.floats(0.005, 0.2))
def test_rate_and_acceleration_limits_hold_for_any_input(samples, dt):
    cfg = FramingConfig(max_rate_dps=50.0, max_accel_dps2=200.0, lost_action="sweep", lost_hold_s=0.1)
    ctl = FramingController(cfg)
    prev_yaw = prev_pitch = 0.0
    for x, y, locked in samples:
        cmd = ctl.update(FramingTarget(locked=locked, x=x, y=y), dt)
        for rate, prev in ((cmd.yaw_rate_dps, prev_yaw), (cmd.pitch_rate_dps, prev_pitch)):
            assert abs(rate) <= cfg.max_rate_dps + 1e-9
            assert abs(rate - prev) <= cfg.max_accel_dps2 * dt + 1e-9
        prev_yaw, prev_pitch = cmd.yaw_rate_dps, cmd.pitch_rate_dps


def test_anti_windup_integral_stays_bounded_at_saturation():
    cfg = FramingConfig(max_rate_dps=30.0, ki=10.0)
    ctl = FramingController(cfg)
    for _ in range(600):  # 20 s of a target the gimbal cannot reach
        ctl.update(FramingTarget(locked=True, x=0.99, y=0.5), DT)
    assert abs(ctl.yaw.pid.components[1]) <= cfg.max_rate_dps
    # once the error flips sign the rate reverses within a fraction of a second
    rates = [ctl.update(FramingTarget(locked=True, x=0.2, y=0.5), DT).yaw_rate_dps for _ in range(30)]
    assert rates[14] < 0


def test_pitch_sign_subject_above_tilts_up():
    ctl = FramingController(FramingConfig())
    cmd = ctl.update(FramingTarget(locked=True, x=0.5, y=0.1), DT)
    assert cmd.pitch_rate_dps > 0 and cmd.yaw_rate_dps == 0


def test_lost_target_holds_then_recentres():
    cfg = FramingConfig(lost_hold_s=1.0, lost_action="recentre")
    ctl = FramingController(cfg)
    for _ in range(20):
        ctl.update(FramingTarget(locked=True, x=0.9, y=0.5), DT)
    states = []
    for _ in range(int(1.5 / DT)):
        cmd = ctl.update(FramingTarget(locked=False), DT)
        states.append(cmd.state)
    hold_frames = states.count("lost_hold")
    assert hold_frames == pytest.approx(1.0 / DT, abs=1)
    assert states[-1] == "recentre"
    assert cmd.yaw_deg == 0.0 and cmd.pitch_deg == 0.0
    flags, yaw, pitch, roll = cmd.to_protocol()
    assert not flags & protocol.SP_YAW_IS_RATE and not flags & protocol.SP_YAW_IN_EARTH_FRAME
    assert (yaw, pitch, roll) == (0, 0, 0)


def test_lost_target_sweep_reverses_within_amplitude():
    cfg = FramingConfig(lost_hold_s=0.5, lost_action="sweep", sweep_rate_dps=30.0, sweep_amplitude_deg=20.0)
    ctl = FramingController(cfg)
    ctl.update(FramingTarget(locked=True, x=0.3, y=0.5), DT)
    yaw = 0.0
    yaws = []
    for _ in range(int(8 / DT)):
        cmd = ctl.update(FramingTarget(locked=False), DT)
        yaw += cmd.yaw_rate_dps * DT
        yaws.append(yaw)
    assert cmd.state == "sweep"
    assert max(yaws) > 15 and min(yaws) < -15
    assert max(abs(v) for v in yaws) < 20.0 + 5.0  # overshoot only by the accel ramp


def test_lost_action_hold_never_moves():
    ctl = FramingController(FramingConfig(lost_action="hold", lost_hold_s=0.2))
    ctl.update(FramingTarget(locked=True, x=0.9, y=0.5), DT)
    cmds = [ctl.update(FramingTarget(locked=False), DT) for _ in range(300)]
    assert cmds[-1].is_still and cmds[-1].state == "lost_hold"


def test_stalled_detector_stops_the_gimbal_at_once():
    ctl = FramingController(FramingConfig(max_dt_s=0.5))
    for _ in range(30):
        ctl.update(FramingTarget(locked=True, x=0.9, y=0.9), DT)
    cmd = ctl.update(FramingTarget(locked=True, x=0.9, y=0.9), 2.0)
    assert cmd.state == "stalled" and cmd.is_still


def test_pause_coasts_to_zero_and_resume_tracks_again():
    ctl = FramingController()
    for _ in range(30):
        ctl.update(FramingTarget(locked=True, x=0.9, y=0.5), DT)
    ctl.pause()
    cmds = [ctl.update(FramingTarget(locked=True, x=0.9, y=0.5), DT) for _ in range(30)]
    assert cmds[-1].is_still and cmds[-1].state == "paused"
    ctl.resume()
    assert ctl.update(FramingTarget(locked=True, x=0.9, y=0.5), DT).yaw_rate_dps > 0


def test_to_protocol_rates_and_portrait_roll():
    cmd = SetpointCommand(yaw_rate_dps=15.0, pitch_rate_dps=-2.5, roll_deg=90.0)
    flags, yaw, pitch, roll = cmd.to_protocol()
    assert flags == (protocol.SP_YAW_IS_RATE | protocol.SP_PITCH_IS_RATE | protocol.SP_YAW_IN_EARTH_FRAME
                     | protocol.SP_PITCH_IN_EARTH_FRAME | protocol.SP_ROLL_IN_EARTH_FRAME)
    assert (yaw, pitch, roll) == (1500, -250, 9000)
    assert SetpointCommand(yaw_rate_dps=1000.0).to_protocol()[1] == 32767
    portrait = FramingController(FramingConfig(roll_deg=90.0)).update(FramingTarget(locked=False), DT)
    assert portrait.roll_deg == 90.0


@pytest.mark.parametrize("key,value", [("hfov_deg", 0.0), ("max_rate_dps", -1.0), ("lost_action", "spin"),
                                       ("kp", -1.0)])
def test_config_validation_names_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        FramingConfig(**{key: value}).validate()


def test_calibration_presets_and_xy():
    assert parse_point("centre") == (0.5, 0.5)
    assert parse_point("center") == (0.5, 0.5)
    assert parse_point("top_left_third") == pytest.approx((1 / 3, 1 / 3))
    assert parse_point("0.4, 0.25") == (0.4, 0.25)
    with pytest.raises(ValueError, match="preset"):
        parse_point("middle")
    with pytest.raises(ValueError, match="inside the frame"):
        parse_point("1.5,0.5")


def test_fit_mapping_recovers_a_known_side_camera_mapping():
    truth = CameraMapping(offset_x=-0.08, offset_y=0.03, scale_x=0.7, scale_y=0.75)
    pairs = [((x, y), truth.apply(x, y)) for x, y in [(0.2, 0.3), (0.8, 0.6), (0.5, 0.9), (0.4, 0.1)]]
    fitted = fit_mapping(pairs)
    assert fitted.offset_x == pytest.approx(truth.offset_x)
    assert fitted.scale_y == pytest.approx(truth.scale_y)
    with pytest.raises(ValueError, match="differ"):
        fit_mapping([((0.5, 0.2), (0.5, 0.2)), ((0.5, 0.8), (0.5, 0.8))])


def test_feedforward_of_the_subjects_rate_cuts_the_trailing_error():
    def trail(ff_on):
        cfg = FramingConfig()
        ctl = FramingController(cfg)
        cam_yaw = 0.0
        errors = []
        for i in range(int(4 / DT)):
            subject_yaw = 25.0 * i * DT
            x = project_x(subject_yaw, cam_yaw, cfg.hfov_deg)
            ff = 25.0 if ff_on else 0.0
            cmd = ctl.update(FramingTarget(locked=True, x=x, y=0.5, yaw_rate_ff_dps=ff), DT)
            cam_yaw += cmd.yaw_rate_dps * DT
            errors.append(abs(subject_yaw - cam_yaw))
        return max(errors[30:])

    assert trail(True) < 0.6 * trail(False)
    # a still subject with a little rate noise below settle_rate_dps still stops for good
    ctl = FramingController(FramingConfig())
    cmds = [ctl.update(FramingTarget(locked=True, x=0.5, y=0.5, yaw_rate_ff_dps=(-1) ** i * 2.0), DT)
            for i in range(300)]
    assert all(c.yaw_rate_dps == 0.0 for c in cmds)
