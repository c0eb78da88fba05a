"""The hardware boundary: what a board module (or the simulator) gives the firmware.

The firmware's cores never touch hardware. ``firmware.app.Gimbal`` talks to one
object with the methods of :class:`HAL` below; ``firmware/boards/rp2.py`` and
``firmware/boards/esp32.py`` implement it with ``machine``, and the simulator
implements it on its plant model. Nothing else imports ``machine``.

Usage on a board (``main.py`` does exactly this)::

    from firmware.boards.rp2 import Board
    from firmware.app import Gimbal
    Gimbal(Board()).run_forever()

Usage in a simulator, stepped in lockstep on simulated time::

    gimbal = Gimbal(sim_hal)             # loads config via sim_hal.config_load()
    period_us = gimbal.period_us         # from config key loop_hz (default 1000 Hz)
    t_us = 0
    while running:
        plant.step(period_us)            # update what imu_read() will report
        gimbal.tick(t_us)                # exactly one control tick
        t_us += period_us

``Gimbal.tick(now_us)`` reads the IMU once, runs calibration or estimator +
controller, writes every axis' motor output once, polls the serial link
without blocking, and sends telemetry when it is due. ``now_us`` is any
integer microsecond clock: wrapping board ticks (``time.ticks_us``) or an
unbounded simulated time; the firmware only ever takes differences with
``fixmath.ticks_diff``, which handles both.

Conventions (the simulator must match them)
-------------------------------------------
Axis indices: ``AXIS_YAW = 0``, ``AXIS_PITCH = 1``, ``AXIS_ROLL = 2``.

IMU sensor frame: the MPU-6050 chip frame. With the default mounting
(config ``imu_mount = 0``) the chip sits component side up on the camera
plate with its x arrow pointing out of the lens, so the chip frame is
x forward (lens), y left, z up, right-handed. ``imu_mount = 1`` is the chip
upside down (x forward, y right, z down).

``imu_read(raw)`` fills ``raw`` (``array('h', 6)``) with signed counts,
in this order: ``ax, ay, az, gx, gy, gz``

- accelerometer: full scale +-4 g, ``ACCEL_LSB_PER_G = 8192``; it measures
  specific force, so a still, level camera reads ``az = +8192``;
- gyro: full scale +-500 deg/s, ``GYRO_LSB_PER_DPS = 65.5`` (131/2);
  right-hand rule about the chip axes: turning the camera to the left
  (counter-clockwise seen from above) gives ``gz > 0``.

Camera attitude (what telemetry reports and setpoints command) uses the
aerospace yaw-pitch-roll (Z-Y-X) convention in a forward-right-down frame:

- yaw   positive = camera pans right (clockwise seen from above);
- pitch positive = camera tilts up (lens above the horizon);
- roll  positive = camera rolls right (right side down, clockwise seen from
  behind the camera).

Joints and motors: a positive joint angle turns the camera in that axis'
positive direction relative to the handle (after config ``motor_dir``, which
fixes a motor wired or mounted the other way). A BLDC output is three PWM
duties (``duty_u16``, 0..65535, 32768 = phase at mid-rail) for the electrical
field angle ``theta_e``: phase A ~ sin(theta_e), B ~ sin(theta_e - 120 deg),
C ~ sin(theta_e + 120 deg), plus a common offset (SVPWM) that does not change
the field. The rotor is pulled toward mechanical angle
``theta_e / pole_pairs``; ``firmware.motor.field_angle_rad(a, b, c)``
recovers ``theta_e`` from three duties for a plant model. A servo output is a
pulse width in microseconds, 1500 us = joint at 0.
"""

import time

try:
    from time import sleep_us as _sleep_us  # type: ignore[attr-defined]
    from time import ticks_us as _ticks_us  # type: ignore[attr-defined]
except ImportError:  # CPython: only used when someone runs the base class

    def _ticks_us():  # type: ignore[misc]
        return int(time.time() * 1000000) & 0x3FFFFFFF

    def _sleep_us(us):  # type: ignore[misc]
        time.sleep(us / 1000000)


AXIS_YAW = 0
AXIS_PITCH = 1
AXIS_ROLL = 2
AXIS_NAMES = ("yaw", "pitch", "roll")

ACCEL_LSB_PER_G = 8192
GYRO_LSB_PER_DPS_X2 = 131  # 65.5 LSB per deg/s, kept integer
IMU_RAW_LEN = 6  # ax, ay, az, gx, gy, gz

BOARD_UNKNOWN = 0
BOARD_RP2 = 1
BOARD_ESP32 = 2
BOARD_SIM = 3


class HAL:
    """The interface, and a board with nothing attached.

    Every method here is the complete contract; a board or the simulator
    subclasses it and overrides what it has. The defaults are safe: no IMU
    (so the firmware raises FAULT imu_read and keeps motors off), outputs
    that go nowhere, a silent link and no config storage.

    Hot-path methods (``imu_read``, ``handle_imu_read``, ``angle_read_axes``,
    ``bldc_write_axes``, ``servo_write``, ``serial_read_into``) are called
    every tick and must not allocate. The two ``_axes`` methods do the
    per-axis ``angle_read``/``bldc_write`` for every axis in a bit mask in one
    call (the defaults below call the per-axis ones; a board or simulator
    overrides them to save the two extra calls a tick).
    """

    board_id = BOARD_UNKNOWN
    # How long ago (us) the motion in an ``imu_read`` sample happened, for a steady rate: the chip's low-pass
    # filter's delay (an MPU-6050 at DLPF_CFG 3: 4800, imu.GYRO_DELAY_US). The attitude integrated from the
    # gyro lags by as much: VERSION tells the host (TELEMETRY's ``t_us`` stays the tick's time, when the frame
    # was sent, which is what the host's clock mapping needs).
    imu_delay_us = 0

    def imu_read(self, raw):
        """Fill ``raw`` (``array('h', 6)``: ax, ay, az, gx, gy, gz counts) in place.

        Return True on success, False on a bus error (the firmware then turns
        the motors off and reports FAULT imu_read). Never raises.
        """
        return False

    def handle_imu_read(self, raw):
        """Optional: fill ``raw`` from a second MPU-6050 on the handle; False = not fitted or failed.

        Same format and ranges as ``imu_read``; the chip lies on the handle's
        board component side up with its x arrow forward (along the lens at
        zero joint angles): x forward, y left, z up, like the camera IMU at
        ``imu_mount = 0``. On the shared I2C bus it answers at 0x69 (AD0 tied
        to 3V3). The firmware feeds its gyro forward into the joint rates
        (config ``handle_ff``); a board without one returns False and
        behaves exactly as before. Never raises.
        """
        return False

    def angle_read(self, axis):
        """Optional: axis' rotor-angle sensor (AS5600/AS5048A) in counts, or -1 (none fitted, or a failed read).

        For the closed-loop drive (config ``<axis>_drive = 1``, firmware/foc.py).
        Called once per tick per closed-loop axis, so it must not allocate;
        a board builds the drivers in firmware/angle_sensor.py. Never raises.
        """
        return -1

    def angle_read_axes(self, mask, counts):
        """Set ``counts[i] = angle_read(i)`` for each axis ``i`` whose bit ``1 << i`` is set in ``mask``.

        ``counts`` is a list of three ints; the other axes' items are left as
        they are. The firmware calls this once per tick for its closed-loop axes.
        """
        for i in range(3):
            if (mask >> i) & 1:
                counts[i] = self.angle_read(i)

    def motors_enable(self, on):
        """Enable (True) or disable (False) all motor drivers (DRV8313 EN pins)."""

    def bldc_write(self, axis, duty_a_u16, duty_b_u16, duty_c_u16):
        """Set the three phase PWM duties (0..65535) of one axis' BLDC motor."""

    def bldc_write_axes(self, mask, duties):
        """``bldc_write`` for each axis ``i`` whose bit ``1 << i`` is set in ``mask``, in one call.

        ``duties`` holds nine duties (``array('H')``): axis ``i``'s phases A, B,
        C at ``3 * i``, ``3 * i + 1``, ``3 * i + 2``. The firmware calls this
        once per tick with its BLDC axes.
        """
        for i in range(3):
            if (mask >> i) & 1:
                k = 3 * i
                self.bldc_write(i, duties[k], duties[k + 1], duties[k + 2])

    def servo_write(self, axis, pulse_us):
        """Set one axis' hobby-servo pulse width in microseconds (0 = no pulses)."""

    def light_write(self, pin, freq_hz, duty_u16):
        """Optional: drive the fill light's PWM pin (``pin`` -1: the board's pin map) at ``freq_hz``, ``duty_u16``.

        Return True when the board has a light there, False when not (MSG_LIGHT
        is then answered NACK not_fitted). Called only when the level or the
        config changes, never per tick. Never raises.
        """
        return False

    def serial_read_into(self, buf):
        """Copy bytes already received into ``buf``; return the count (0 if none).

        Must never block: return 0 when nothing is waiting.
        """
        return 0

    def serial_write(self, data):
        """Queue all of ``data`` (bytes, bytearray or memoryview) for sending."""

    def config_load(self):
        """Return the stored config file as bytes, or None if there is none."""
        return None

    def config_save(self, data):
        """Store ``data`` (bytes) as the config file; return True on success."""
        return False

    def ticks_us(self):
        """Board microsecond ticks for ``run_forever`` (may wrap like time.ticks_us)."""
        return _ticks_us()

    def sleep_us(self, us):
        """Wait ``us`` microseconds; ``run_forever`` uses it to pace the loop."""
        if us > 0:
            _sleep_us(us)
