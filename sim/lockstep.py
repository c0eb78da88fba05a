# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""The simulator's 1 kHz lockstep loop: link, IMUs, rotor sensors, firmware tick, motors, hand, MuJoCo.

:class:`Lockstep` is the per-tick half of :class:`sim.world.SimGimbal` (which
builds it and serves the host): one ``tick()`` per control period, as the
world's module docstring describes. It runs as plain Python in the
interpreted firmware modes and, with the per-tick models it drives
(imu, motor, angle_sensor, link, plant, hal), compiled by Cython with
C doubles and typed views of MuJoCo's arrays when the firmware mode is
``compiled`` (sim/compiled_sim.py; the types are in the ``.pxd`` files next
to these modules). The same source either way, so the results are bit for bit
the same (tests/test_sim_compiled.py).

The modules this one imports relatively (``from .imu import ...``) are
compiled with it (``sim.world.MODELS``); the world picks the classes of its
firmware mode (``sim.world.sim_models``):

    ls = sim_models("compiled")                     # or "inprocess": the plain Python classes
    loop = ls.Lockstep(plant, hal, handle, imu, handle_imu, motors, servos, link_up, link_down,
                       angle_sensor, peak_torque_nm, traces)
    loop.start(firmware.tick, period_us, hold_frac)
    loop.step_to_tick(1000)                         # one simulated second
"""

import math
from array import array

import cython
import numpy as np

# the classes this loop drives, compiled with it (the .pxd types its attributes with them)
from .angle_sensor import AngleSensorModel  # noqa: F401
from .imu import ImuModel  # noqa: F401
from .link import SerialLink  # noqa: F401
from .motor import BldcMotor  # noqa: F401
from .plant import GimbalPlant  # noqa: F401

TRACE_EVERY_TICKS = 4  # traces are kept at 250 Hz
RAD_TO_DEG = 180.0 / math.pi  # math.degrees(x) is x * this, the same double
POSE_BLOCK_TICKS = 1000  # the hand's pose is computed a block of ticks at a time (one numpy call)


class Lockstep:
    """The per-tick state and loop of one simulated gimbal (built by :class:`sim.world.SimGimbal`)."""

    def __init__(self, plant, hal, handle, imu, handle_imu, motors, servos, link_up, link_down, angle_sensor,
                 peak_torque_nm, traces):
        self.plant = plant
        self.hal = hal
        self.handle = handle
        self.imu = imu
        self.handle_imu = handle_imu  # None: not fitted
        self.motors = motors
        self.servos = servos
        self.m0, self.m1, self.m2 = motors
        self.link_up = link_up
        self.link_down = link_down
        self.angle_sensor = angle_sensor  # None: not fitted
        self.peak_torque_nm = peak_torque_nm
        self.gyro_at, self.accel_at, self.handle_gyro_at, self.handle_accel_at = plant.sensor_adr
        self.dt_s = plant.timestep_s
        self.period_us = 0
        self.tick_count = 0
        self.fw_tick = None
        # with sensors fitted the tick's reads take a real share of it: the new duties reach the
        # motors output_delay_us after the tick starts, and the old ones drive it until then
        self.hold_frac = 0.0
        self.old_duties = array("l", [32768] * 9)  # the duties of the last tick, three per axis
        self.angle = array("d", [0.0, 0.0, 0.0])  # the joints' state at the tick's start (rad, rad/s)
        self.rate = array("d", [0.0, 0.0, 0.0])
        self.torques = array("d", [0.0, 0.0, 0.0])
        self.pose_block = None  # POSE_BLOCK_TICKS mocap rows of the hand, 7 floats each
        self.pose_block_start = 0
        self.pose_block_len = 0
        self.traces = traces  # a sim.world.Traces: the time series appended every TRACE_EVERY_TICKS ticks
        self.max_effort = 0.0

    def start(self, fw_tick, period_us, hold_frac):
        """The firmware's ``tick(now_us)`` and its period; ``hold_frac`` of a tick runs on the old duties."""
        self.fw_tick = fw_tick
        self.period_us = period_us
        self.hold_frac = hold_frac
        if period_us != int(round(self.dt_s * 1e6)):
            # the plant steps once per control tick; keep the two in step
            self.dt_s = period_us / 1e6
            self.plant.model.opt.timestep = self.dt_s

    def sample_imus(self, t_s):
        """Every IMU sample due by ``t_s``, from the plant's sensors now."""
        sens = self.plant.sensor_values()
        self.imu.update_at(t_s, sens, self.gyro_at, self.accel_at)
        if self.handle_imu is not None:
            self.handle_imu.update_at(t_s, sens, self.handle_gyro_at, self.handle_accel_at)

    def cogging_only(self):
        """Torques of the three motors with their drivers off (the plant settling before the firmware boots)."""
        plant = self.plant
        return [m.torque_nm(0, 0, 0, plant.joint_rad(k), 0.0) for k, m in enumerate(self.motors)]

    def step_to_tick(self, end_tick):
        """Run control ticks until ``tick_count`` reaches ``end_tick``."""
        while self.tick_count < end_tick:
            self.tick()

    def tick(self):
        # The lockstep tick, 1000 times per simulated second: C doubles when compiled, plain
        # floats interpreted; no per-tick objects but the firmware's serial bytes.
        plant = self.plant
        hal = self.hal
        now_us = self.tick_count * self.period_us
        t_s = now_us / 1e6
        up = self.link_up
        if up.has_in_flight():
            data = up.read(t_s)
            if data:
                hal.feed_rx(data)
        self.sample_imus(t_s)
        hal.now_us = now_us
        angle = self.angle
        rate = self.rate
        plant.joint_state_into(angle, rate)
        sensor = self.angle_sensor
        if sensor is not None:
            counts = hal.angle_counts
            counts[0] = sensor.read(0, angle[0], rate[0])
            counts[1] = sensor.read(1, angle[1], rate[1])
            counts[2] = sensor.read(2, angle[2], rate[2])
        self.fw_tick(now_us)
        if hal.tx:
            self.link_down.write(hal.take_tx(), t_s)
        servo_us = hal.servo_us
        duties = hal.duties
        on = hal.motors_on
        torques = self.torques
        torques[0] = self.axis_torque(0, self.m0, servo_us[0], duties[0], on)
        torques[1] = self.axis_torque(1, self.m1, servo_us[1], duties[1], on)
        torques[2] = self.axis_torque(2, self.m2, servo_us[2], duties[2], on)
        self.tick_count += 1
        i = self.tick_count - self.pose_block_start
        if i >= self.pose_block_len:
            self.next_pose_block()
            i = 0
        plant.set_hand_mocap(self.pose_block[i])
        plant.step3(torques[0], torques[1], torques[2])
        if self.tick_count % TRACE_EVERY_TICKS == 0:
            self.trace()

    def axis_torque(self, k, motor, servo_us, d, on):
        """Axis k's actuator torque this tick: its servo, or its BLDC motor on the duties ``d``."""
        if servo_us:
            # a servo axis: the servo's own gearmotor is the actuator
            servo = self.servos[k]
            servo.write(servo_us)
            return servo.torque_nm(self.angle[k], self.rate[k], self.dt_s)
        motor.enabled = on
        a = d[0]
        b = d[1]
        c = d[2]
        tau = motor.torque_nm(a, b, c, self.angle[k], self.rate[k])
        w = self.hold_frac
        if w:
            old = self.old_duties
            j = 3 * k
            tau = (1.0 - w) * tau + w * motor.torque_nm(old[j], old[j + 1], old[j + 2], self.angle[k], self.rate[k])
            old[j] = a
            old[j + 1] = b
            old[j + 2] = c
        return tau

    def trace(self):
        plant = self.plant
        hal = self.hal
        torques = self.torques
        effort = [0.0, 0.0, 0.0]
        for k in range(3):
            if hal.servo_us[k]:
                effort[k] = abs(torques[k]) / self.servos[k].params.stall_torque_nm
            else:
                effort[k] = abs(torques[k]) / self.peak_torque_nm
        self.max_effort = max(self.max_effort, effort[0], effort[1], effort[2])
        tr = self.traces
        tr.t_s.append(self.tick_count * self.period_us / 1e6)
        tr.camera_ypr_deg.append(plant.camera_ypr_deg())
        tr.handle_ypr_deg.append(plant.handle_ypr_deg())
        angle = self.angle  # the joints after the step (the next tick reads them afresh)
        plant.joint_state_into(angle, self.rate)
        tr.joint_deg.append([angle[0] * RAD_TO_DEG, angle[1] * RAD_TO_DEG, angle[2] * RAD_TO_DEG])
        tr.effort.append(effort)

    def next_pose_block(self):
        """Precompute the hand's mocap rows for the next POSE_BLOCK_TICKS ticks (one numpy pass)."""
        tick = self.tick_count
        ticks = np.arange(tick, tick + POSE_BLOCK_TICKS)
        block = self.plant.hand_mocap_block(self.handle.poses(ticks * (self.period_us / 1e6)))
        # compiled: a typed view of the array; interpreted: lists of floats, cheaper to index there
        self.pose_block = block if cython.compiled else block.tolist()
        self.pose_block_start = tick
        self.pose_block_len = POSE_BLOCK_TICKS
