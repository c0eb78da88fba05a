"""The config file the simulated gimbal boots with: the firmware's defaults plus this board's tuning.

A real gimbal is tuned for its motors and payload (every open-loop gimbal
firmware has per-axis power and PID settings); these are the settings for the
simulated phone gimbal in ``sim/models/gimbal.xml`` with the motor in
``sim/motor.py``. A scenario's ``[firmware]`` table overrides them by key
name (names and ranges from ``firmware/config.py``).

    data = board_config_bytes({"pitch_rate_kd_ms": 25.0})   # -> HAL.config_load()

Why these values: the open-loop field holds the rotor like a spring
(stiffness = torque amplitude x pole pairs, about 0.2 N*m/rad at 80 % power)
and the payload's inertia makes a lightly damped 3-6 Hz resonance (back-EMF
damping gives zeta ~ 0.05). The firmware's rate derivative (``rate_kd_ms``,
on the gyro) is the only damping the loop can add, so each axis gets
kd ~ 2 * 0.7 * sqrt(k * J) / k for its inertia J (pitch 1e-4, roll 6e-4,
yaw 1.2e-3 kg*m^2), and the integral gain is lowered to keep the phase
margin at the resonance. The rate gains were then searched on
stabilize-walking (6 s): rate_kp 2.5 rejects the most walking motion where
the loop stays stable (5 goes unstable), except on the light pitch axis.

The simulated board has the optional handle IMU (``[imu] handle_imu``), so the
firmware's ``handle_ff`` (default 1.0) feeds the handle's rotation forward into
the joints; with it, what remained on walking was mostly the estimator's
gravity direction pulled around by the hand's linear accelerations, hence the
low ``est_kp``.
"""

from opensteady.firmware import config as fw_config

SIM_BOARD_SETTINGS = {
    "yaw_power_permille": 800,
    "pitch_power_permille": 800,
    "roll_power_permille": 800,
    "yaw_rate_kp": 2.5,
    "pitch_rate_kp": 1.5,  # the lightest axis: 2.5 leaves it ringing at 7 Hz
    "roll_rate_kp": 2.5,
    "yaw_rate_ki": 0.5,
    "pitch_rate_ki": 0.5,
    "roll_rate_ki": 0.5,
    "yaw_rate_kd_ms": 100.0,
    "pitch_rate_kd_ms": 30.0,
    "roll_rate_kd_ms": 100.0,
    # Walking shakes the handle linearly too (surge and sway of ~0.5 m/s^2 tilt the measured gravity
    # by a few degrees at 1-2 Hz); a slow accelerometer pull keeps that out of the attitude, and the
    # walking jitter is about proportional to it (walking-foc: 0.3 -> 0.12, 0.1 -> 0.046, 0.02 -> 0.021
    # deg). Lower is not taken: with est_ki at its default 0.05 the bias loop's damping is
    # est_kp / (2 sqrt(est_ki)), 0.22 here (a boot calibration error rings for ~65 s), and an est_ki
    # small enough to damp a lower est_kp cannot follow a real gyro's warm-up drift (the simulated
    # bias only random-walks, so it would not show): docs/firmware.md, "Choosing est_kp and est_ki".
    "est_kp": 0.1,
}


def board_config(overrides=()):
    """A validated firmware Config: defaults, then SIM_BOARD_SETTINGS, then ``overrides``."""
    cfg = fw_config.Config()
    settings = dict(SIM_BOARD_SETTINGS)
    settings.update(dict(overrides))
    for name, value in settings.items():
        key = fw_config.KEY_IDS.get(name)
        if key is None:
            raise ValueError("firmware.%s: unknown firmware config key" % name)
        status = cfg.set(key, value)
        if status != 0:
            spec = fw_config.KEYS[key]
            raise ValueError("firmware.%s = %r: rejected by the firmware (%s; range %r..%r)"
                             % (name, value, fw_config.protocol.NACK_NAMES[status], spec[2], spec[3]))
    return cfg


def board_config_bytes(overrides=()):
    return board_config(overrides).to_bytes()
