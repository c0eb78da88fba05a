"""Simulator building blocks: motor, servo, IMU, link, plant conventions, camera, scenarios, metrics."""

import math
import textwrap
from array import array

import numpy as np
import pytest

from opensteady.firmware import hal as fw_hal
from opensteady.firmware.motor import bldc_amplitude, bldc_duties
from opensteady.sim import metrics as M
from opensteady.sim.camera import CameraParams, PinholeCamera
from opensteady.sim.imu import ACCEL_LSB_PER_G, GYRO_LSB_PER_DPS, ImuModel, ImuParams
from opensteady.sim.link import LinkParams, SerialLink
from opensteady.sim.motor import BldcMotor, BldcParams, ServoModel, field_from_duties
from opensteady.sim.plant import GimbalPlant, matrix_from_ypr_deg, ypr_deg_from_matrix
from opensteady.sim.scenario import ScenarioError, load_scenario, parse_scenario, scenario_names


def _duties(joint_deg, amp_permille=500, pole_pairs=7):
    out = [0, 0, 0]
    bldc_duties(int(joint_deg * 1e6), pole_pairs, 1, bldc_amplitude(amp_permille, False), False, out)
    return out


# --- BLDC motor ---------------------------------------------------------------------
@pytest.mark.parametrize("joint_deg", [0.0, 3.0, -20.0, 47.5])
def test_field_angle_recovered_from_firmware_duties(joint_deg):
    theta, v_amp = field_from_duties(*_duties(joint_deg), bus_v=8.0)
    want = math.radians(joint_deg * 7)
    assert abs(math.remainder(theta - want, 2 * math.pi)) < 0.01
    assert v_amp == pytest.approx(0.5 * 8.0 / 2, rel=0.01)  # 50 % of half the bus


def test_bldc_pulls_rotor_towards_field_and_is_zero_when_aligned():
    m = BldcMotor(BldcParams(cogging_nm=0.0))
    m.enabled = True
    d = _duties(2.0)
    # zero up to the firmware sine table's angular resolution (under 1 % of the peak)
    assert m.torque_nm(*d, math.radians(2.0), 0.0) == pytest.approx(0.0, abs=0.01 * m.params.peak_torque_nm)
    assert m.torque_nm(*d, math.radians(1.0), 0.0) > 0  # rotor behind the field: pushed forward
    assert m.torque_nm(*d, math.radians(3.0), 0.0) < 0
    # beyond 90 electrical degrees (12.9 mechanical at 7 pole pairs) the pull weakens again: pole slip
    peak = m.torque_nm(*d, math.radians(2.0 - 90 / 7), 0.0)
    assert m.torque_nm(*d, math.radians(2.0 - 150 / 7), 0.0) < peak


def test_bldc_back_emf_opposes_motion_and_power_limit_caps_current():
    p = BldcParams(cogging_nm=0.0, power_limit_w=1.0)
    m = BldcMotor(p)
    m.enabled = True
    d = _duties(0.0, amp_permille=1000)
    assert m.torque_nm(*d, 0.0, 5.0) < 0 < m.torque_nm(*d, 0.0, -5.0)
    m.torque_nm(*d, math.radians(-90 / 7), 0.0)
    assert 1.5 * m.current_a ** 2 * p.phase_resistance_ohm <= p.power_limit_w * 1.0001


def test_bldc_disabled_leaves_only_cogging_with_its_period():
    p = BldcParams()
    m = BldcMotor(p)
    assert m.torque_nm(0, 0, 0, 0.0, 0.0) == pytest.approx(0.0)
    quarter = 2 * math.pi / p.cogging_periods / 4
    assert abs(m.torque_nm(0, 0, 0, quarter, 0.0)) == pytest.approx(p.cogging_nm)
    assert m.torque_nm(0, 0, 0, quarter + 2 * math.pi / p.cogging_periods, 0.0) == pytest.approx(
        m.torque_nm(0, 0, 0, quarter, 0.0))


def test_servo_drives_towards_pulse_target_and_goes_limp_without_pulses():
    s = ServoModel()
    s.write(1500 + 10 * 20)  # 20 deg at the firmware's 10 us/deg
    tau = s.torque_nm(0.0, 0.0, dt_s=0.02)
    assert tau > 0
    assert s.torque_nm(math.radians(40), 0.0, dt_s=0.02) < 0
    s.write(0)
    assert s.torque_nm(0.0, 0.0, dt_s=0.02) == 0.0


# --- IMU ------------------------------------------------------------------------------
def test_imu_level_and_still_reads_one_g_up_with_datasheet_noise():
    imu = ImuModel(ImuParams(gyro_bias_dps=0.0, accel_bias_g=0.0, gyro_bias_walk_dps_per_rts=0.0,
                             accel_bias_walk_g_per_rts=0.0), seed=3)
    raw = array("h", [0] * 6)
    samples = []
    for k in range(2000):
        imu.update(k / 1000.0, [0.0, 0.0, 0.0], [0.0, 0.0, 9.80665])
        imu.read_into(raw)
        samples.append(list(raw))
    a = np.array(samples, dtype=float)
    assert a[:, 2].mean() == pytest.approx(ACCEL_LSB_PER_G, abs=5)
    gyro_sigma_counts = a[:, 3:].std(axis=0)
    want = 0.005 * math.sqrt(math.pi / 2 * 42.0) * GYRO_LSB_PER_DPS  # noise density over the DLPF band
    assert np.all(gyro_sigma_counts > 0.7 * want) and np.all(gyro_sigma_counts < 1.3 * want)
    assert all(isinstance(v, int) for v in raw)


def test_imu_saturates_at_full_scale_and_follows_turn_direction():
    imu = ImuModel(ImuParams(dlpf_hz=0.0), seed=1)
    raw = array("h", [0] * 6)
    imu.update(0.0, [0.0, 0.0, math.radians(900.0)], [0.0, 0.0, 9.8])
    imu.read_into(raw)
    assert raw[5] == 32767  # +-500 deg/s range clips
    imu.update(0.001, [0.0, 0.0, math.radians(30.0)], [0.0, 0.0, 9.8])
    imu.read_into(raw)
    assert raw[5] == pytest.approx(30 * 65.5, abs=200)  # turning left (CCW from above): gz > 0


def test_imu_delay_is_the_lag_of_the_angle_integrated_from_its_gyro():
    """The DLPF's delay the simulated HAL reports (HAL.imu_delay_us): a pan starting at 100 deg/s, integrated from
    the gyro counts, trails the true angle by exactly the rate times ``delay_s`` once the filter settled."""
    quiet = dict(gyro_noise_dps_per_rthz=0.0, accel_noise_g_per_rthz=0.0, gyro_bias_dps=0.0, accel_bias_g=0.0,
                 gyro_bias_walk_dps_per_rts=0.0, accel_bias_walk_g_per_rts=0.0)
    for dlpf_hz in (42.0, 98.0):
        imu = ImuModel(ImuParams(dlpf_hz=dlpf_hz, **quiet))
        rate_dps = 100.0
        raw = array("h", [0] * 6)
        angle_deg = 0.0
        for k in range(200):  # 0.2 s: a pan that starts at sample 10
            omega = math.radians(rate_dps) if k >= 10 else 0.0
            imu.update(k * 1e-3, [0.0, 0.0, omega], [0.0, 0.0, 9.80665])
            imu.read_into(raw)
            angle_deg += raw[5] / GYRO_LSB_PER_DPS * 1e-3
        true_deg = rate_dps * 190 * 1e-3
        lag_s = (true_deg - angle_deg) / rate_dps
        assert lag_s == pytest.approx(imu.delay_s, abs=2e-6)  # (counts round to whole LSBs while it settles)
        assert 1 / (2 * math.pi * dlpf_hz) - 0.5e-3 < imu.delay_s < 1 / (2 * math.pi * dlpf_hz)
    assert ImuModel(ImuParams(dlpf_hz=0.0)).delay_s == 0.0


def test_imu_is_deterministic_per_seed():
    def run(seed):
        imu = ImuModel(seed=seed)
        raw = array("h", [0] * 6)
        out = []
        for k in range(50):
            imu.update(k / 1000.0, [0.1, 0.0, 0.0], [0.0, 0.0, 9.8])
            imu.read_into(raw)
            out.append(tuple(raw))
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


# --- serial link ----------------------------------------------------------------------
def test_link_is_baud_limited_with_latency():
    link = SerialLink(LinkParams(baud=115200, latency_s=0.002))
    link.write(bytes(range(115)), t_s=0.0)  # 115 bytes = 10 ms of line time
    assert link.read(0.002) == b""
    got = link.read(0.0021 + 0.005)
    assert 55 <= len(got) <= 60
    rest = link.read(0.013)
    assert got + rest == bytes(range(115))


def test_link_drops_and_corrupts_at_the_configured_rates():
    link = SerialLink(LinkParams(drop_rate=0.01, corrupt_rate=0.02), seed=9)
    data = bytes(200000)
    link.write(data, 0.0)
    got = link.read(1e9)
    assert link.bytes_dropped == pytest.approx(2000, rel=0.15)
    assert link.bytes_corrupted == pytest.approx(0.02 * 198000, rel=0.15)
    assert len(got) == len(data) - link.bytes_dropped
    assert sum(1 for b in got if b) == link.bytes_corrupted  # every corruption flipped exactly one bit


# --- plant conventions -----------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_positive_joint_turns_camera_positive_in_firmware_convention(axis):
    plant = GimbalPlant()
    angles = [0.0, 0.0, 0.0]
    angles[axis] = math.radians(10.0)
    plant.set_joints_rad(angles)
    ypr = plant.camera_ypr_deg()
    assert ypr[axis] == pytest.approx(10.0, abs=0.01)


def test_attitude_round_trip_and_imu_axes_match_hal_contract():
    for ypr in ([10, 5, 3], [-120, 40, -30]):
        assert ypr_deg_from_matrix(matrix_from_ypr_deg(ypr)) == pytest.approx(ypr, abs=1e-9)
    plant = GimbalPlant()
    for _ in range(200):
        plant.step([0.0, 0.0, 0.0])
    accel = plant.imu_accel_mps2()
    assert accel[2] == pytest.approx(9.81, abs=0.05)  # specific force: +1 g on z when level
    assert fw_hal.AXIS_NAMES == ("yaw", "pitch", "roll")


# --- camera ----------------------------------------------------------------------------
def test_pinhole_projection_centre_and_direction():
    cam = PinholeCamera(CameraParams(hfov_deg=70, width=640, height=480))
    rot = matrix_from_ypr_deg([0, 0, 0])
    uv, depth = cam.project([[2.0, 0.0, 0.0], [2.0, -0.5, 0.2]], np.zeros(3), rot)
    assert uv[0] == pytest.approx([319.5, 239.5])
    assert depth[0] == pytest.approx(2.0)
    assert uv[1][0] > 319.5 and uv[1][1] < 239.5  # right of (-y) and above (+z) the axis
    # pan right: a point straight ahead moves left in the image
    uv2, _ = cam.project([[2.0, 0.0, 0.0]], np.zeros(3), matrix_from_ypr_deg([5, 0, 0]))
    assert uv2[0][0] < 319.5
    assert cam.focal_px == pytest.approx(320 / math.tan(math.radians(35)))


def test_camera_params_are_validated():
    with pytest.raises(ValueError, match="hfov_deg"):
        CameraParams(hfov_deg=200).validate()
    with pytest.raises(ValueError, match="width"):
        CameraParams(width=641).validate()


# --- scenarios -------------------------------------------------------------------------
def test_every_required_scenario_is_bundled_and_valid():
    names = scenario_names()
    for need in ("stabilize-still", "stabilize-walking", "track-crossing", "track-occlusion", "gesture-pause",
                 "two-people", "subject-leaves-frame"):
        assert need in names
        sc = load_scenario(need)
        assert sc.name == need
    crossing = load_scenario("track-crossing").subjects[0]
    # the subject crosses at 30 deg/s
    assert (crossing.at(4.0)[0] - crossing.at(3.5)[0]) / 0.5 == pytest.approx(30.0)


def test_unknown_scenario_names_the_choices():
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'.*track-crossing"):
        load_scenario("nope")


def test_bad_toml_and_bad_values_name_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \"x\"\nseconds = [1,\n")
    with pytest.raises(ScenarioError, match="bad TOML"):
        load_scenario(str(bad))
    with pytest.raises(ScenarioError, match="handle.profile = 'jogging'"):
        parse_scenario({"name": "x", "handle": {"profile": "jogging"}})
    with pytest.raises(ScenarioError, match="link.wobble: unknown key"):
        parse_scenario({"name": "x", "link": {"wobble": 1}})
    with pytest.raises(ScenarioError, match="firmware.pitch_rate_kp = 500"):
        parse_scenario({"name": "x", "firmware": {"pitch_rate_kp": 500}})
    with pytest.raises(ScenarioError, match="firmware.warp_drive: unknown"):
        parse_scenario({"name": "x", "firmware": {"warp_drive": 1}})
    with pytest.raises(ScenarioError, match="times must increase"):
        parse_scenario({"name": "x", "subjects": [{"path": [[1, 0, 2, 0], [0, 5, 2, 0]]}]})
    good = tmp_path / "good.toml"
    good.write_text(textwrap.dedent("""
        name = "mine"
        seconds = 3.0
        [handle]
        profile = "running"
    """))
    assert load_scenario(str(good)).handle.profile == "running"


# --- metrics -----------------------------------------------------------------------------
def test_highpass_removes_slow_motion_and_keeps_jitter():
    fs = 250.0
    t = np.arange(0, 8, 1 / fs)
    slow = 10 * np.sin(2 * np.pi * 0.05 * t) + 3 * t
    fast = 0.2 * np.sin(2 * np.pi * 8 * t)
    hp = M.highpass(slow + fast, fs)
    assert np.std(hp - fast) < 0.02
    zeros = np.zeros((len(t), 3))
    cam = np.stack([fast, zeros[:, 0], zeros[:, 0]], axis=1)
    assert M.jitter_rms_deg(t, cam, zeros) == pytest.approx(0.2 / math.sqrt(2), rel=0.05)


def test_biquad_is_the_textbook_recursion_bit_for_bit():
    """The high-pass computes its input terms for all samples at once: every output must still be the float that
    y[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2] - a1 y[n-1] - a2 y[n-2], summed left to right one sample at a time,
    gives (so the jitter metric is the same to the last digit as before)."""
    fs, fc = 250.0, 0.5
    k = math.tan(math.pi * fc / fs)
    norm = 1.0 / (1.0 + math.sqrt(2.0) * k + k * k)
    b0, b1, b2 = norm, -2.0 * norm, norm
    a1 = 2.0 * (k * k - 1.0) * norm
    a2 = (1.0 - math.sqrt(2.0) * k + k * k) * norm
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 3)) * np.array([1e-3, 1.0, 300.0])
    x[::37] = 0.0
    x[5::41] = -0.0
    got = M._biquad_highpass(x, fs, fc)
    for col in range(3):
        x1 = x2 = y1 = y2 = 0.0
        for n, xn in enumerate(x[:, col].tolist()):
            yn = b0 * xn + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            assert got[n, col] == yn and math.copysign(1.0, got[n, col]) == math.copysign(1.0, yn), (n, col)
            x2, x1, y2, y1 = x1, xn, y1, yn


def test_tracking_rms_counts_only_frames_in_view():
    face = [(320, 240), (320 + 64, 240), (0, 0)]
    rms = M.tracking_rms_frac(face, [True, True, False], (0.5, 0.5), (640, 480))
    assert rms == pytest.approx(math.sqrt((0 + 0.1 ** 2) / 2))
    assert M.lost_frac([True, True, False], [True, False, False]) == 0.5
    assert M.tracking_rms_frac(face, [False] * 3, (0.5, 0.5), (640, 480)) is None


# --- handle disturbance ------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["still", "tremor", "walking", "running", "pan"])
def test_handle_profile_vectorised_equals_scalar_and_fades_in(profile):
    from opensteady.sim.disturbance import HandleDisturbance, HandleMotion

    h = HandleDisturbance(HandleMotion(profile, start_s=1.0, ramp_s=0.5), seed=3)
    t = np.arange(0.0, 5.0, 0.004)
    block = h.poses(t)
    scalar = np.array([list(h.pose(x)[0]) + list(h.pose(x)[1]) for x in t])
    assert np.abs(block - scalar).max() < 1e-9
    assert np.all(block[t <= 1.0] == 0.0)  # still while the firmware calibrates
    if profile == "walking":
        yaw_pitch_roll = block[t > 2.0, 3:]
        assert 0.5 < yaw_pitch_roll.std(axis=0).min() and yaw_pitch_roll.std(axis=0).max() < 4.0


def test_a_heavier_phone_weighs_more_and_is_balanced_like_the_default():
    light, default, heavy = (GimbalPlant(phone_mass_kg=m) for m in (0.15, None, 0.26))
    masses = [float(p.model.body("payload").mass[0]) for p in (light, default, heavy)]
    assert masses == pytest.approx([0.18, 0.225, 0.29])
    # the payload's unbalance (mass x centre-of-mass offset from the pitch axis) is what the user balanced it to
    moments = [float(p.model.body("payload").mass[0]) * p.model.body("payload").ipos for p in (light, default, heavy)]
    assert moments[0] == pytest.approx(moments[1], abs=1e-7) and moments[2] == pytest.approx(moments[1], abs=1e-7)
    inertia = [float(p.model.body("payload").inertia.sum()) for p in (light, default, heavy)]
    assert inertia[0] < inertia[1] < inertia[2]
    sc = parse_scenario({"name": "x", "phone": {"mass_kg": 0.26}})
    assert sc.phone.mass_kg == 0.26
    with pytest.raises(ScenarioError, match="phone.mass_kg"):
        parse_scenario({"name": "x", "phone": {"mass_kg": 2.0}})
