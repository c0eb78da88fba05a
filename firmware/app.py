"""The gimbal application: wires the cores to a HAL and runs one control tick at a time.

``Gimbal(hal).tick(now_us)`` is the whole firmware for one period: read the
IMU, calibrate or estimate, let the modes set the targets, run the three
axis controllers, drive the motors, poll the link without blocking, and send
telemetry and heartbeats when due. ``run_forever()`` paces ``tick`` with the
board's ticks at ``loop_hz``; a simulator calls ``tick`` itself on simulated
time (see firmware/hal.py for the contract and the sign conventions).

    from firmware.app import Gimbal
    g = Gimbal(hal)              # config from hal.config_load(); corrupt -> defaults, reported
    g.tick(now_us)               # one tick; allocates nothing in steady state

The parts, one concern each (docs/firmware.md has the table):

- ``g.modes`` (modes.py): the mode, the per-axis targets and feed-forward;
- ``g.faults`` and ``g.watchdog`` (failsafe.py): FAULT flags, their
  recovery timers, and the link failsafe;
- ``g.link`` (link.py): bytes in, frames parsed, commands carried out;
- ``g.tel`` (telemetry.py): every frame the device sends;
- ``g.drive`` (drive.py): joint angles out to the BLDC phases or servos;
- ``g.light`` (light.py): the fill light's PWM (MSG_LIGHT), written only on a change;
- ``g.est`` (estimator.py) and ``g.axes`` (control.py): attitude and control.

What this module itself decides:

- Motors stay off until the boot gyro calibration has passed (the gimbal
  must be still for ``calib_ms``; movement restarts it and raises FAULT
  calibration_moved), then the ``boot_mode`` is entered.
- An IMU read error turns the motors off at once and raises FAULT
  imu_read; an implausible IMU (3 stuck samples in a row, or 300 ms under
  0.25 g: imu.PlausibilityCheck) does the same with FAULT imu_implausible. After ``fault_recover_ms`` of good
  samples the motors come back (bumplessly); with ``fault_recover_ms = 0`` a
  MODE command is needed.
- When the link failsafe turns on in track mode, the camera holds the
  earth-frame attitude it had at that moment, until the next valid SETPOINT.
- Mode changes are bumpless: targets continue from where they are and the
  controllers keep their state (they are reset only when motors start).
"""

import gc
from array import array

from .autotune import TUNE_RUNNING, TUNE_TOO_BIG, AxisAutotune
from .config import DRIVER_BLDC, Config, axis_key
from .control import OFF, S_EFFORT, S_JOINT, AxisController, HandleFeedForward, step_axes
from .drive import MotorDrive
from .estimator import AttitudeEstimator
from .failsafe import IMU_FAULTS, Faults, LinkWatchdog
from .fixmath import TICKS_MASK, ticks_diff, wrap_udeg
from .foc import FF_STRIDE, FF_WORD, FocDrive
from .imu import CAL_DONE, CAL_MOVED, GyroCalibrator, PlausibilityCheck, to_body
from .light import FillLight
from .link import Link
from .modes import Modes
from .protocol import (
    ACK_OK,
    FAULT_CALIBRATION_MOVED,
    FAULT_CONFIG_CORRUPT,
    FAULT_IMU_IMPLAUSIBLE,
    FAULT_IMU_READ,
    FAULT_LOOP_OVERRUN,
    MODE_NAMES,
    MODE_OFF,
    MODE_TRACK,
    NACK_BAD_MODE,
    NACK_NOT_READY,
    NACK_OUT_OF_RANGE,
    STATE_CALIBRATED,
    STATE_CONFIG_DEFAULTED,
    STATE_FAILSAFE,
    STATE_MOTORS_ON,
)
from .telemetry import Telemetry
from .torque_ff import TorqueFeedForward

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]

# what the tick tests every time: imported names are global lookups in native code, these fold
_IMU_FAULTS = const(0x0003)  # failsafe.IMU_FAULTS
_DUE_TELEMETRY = const(1)  # telemetry.DUE_TELEMETRY
_DUE_HEARTBEAT = const(2)  # telemetry.DUE_HEARTBEAT


class Gimbal:
    def __init__(self, hal, config=None):
        self.hal = hal
        self.raw = array("h", [0, 0, 0, 0, 0, 0])
        self.handle_raw = array("h", [0, 0, 0, 0, 0, 0])  # the optional handle IMU (HAL.handle_imu_read)
        self.body = [0, 0, 0, 0, 0, 0]
        self.est = AttitudeEstimator()
        self.axes = [AxisController(), AxisController(), AxisController()]
        self.handle_ff = HandleFeedForward()
        self.faults = Faults()
        self.watchdog = LinkWatchdog(self.faults)
        self.modes = Modes(self.est, self.axes)
        self.drive = MotorDrive(hal)
        self.light = FillLight(hal)  # off at boot; configure() drives its pin low
        self.foc = FocDrive()  # the closed-loop drive, for axes configured for it
        # its torque feed-forward from the handle's accelerometer, written where FocDrive.duties reads it
        self.torque_ff = TorqueFeedForward(self.handle_ff.body, self.foc.packed, FF_WORD, FF_STRIDE)
        self.foc_needs_cal = False
        self.plausibility = PlausibilityCheck()
        self.tune = AxisAutotune()  # a relay auto-tune on one axis (MSG_TUNE), else idle
        self.tel = Telemetry(hal, self.est, self.axes)
        self.link = Link(hal, self, self.modes, self.watchdog, self.tel)
        self.calibrated = False
        self.config_defaulted = False
        self.imu_ok = False
        self.loop_time_us = 0
        # uptime in ms, 32 bits as two 16-bit halves (small ints on any port), counted about once a second
        # and before each heartbeat
        self.uptime_ms_lo = 0
        self.uptime_ms_hi = 0
        self._uptime_us = 0  # us not yet counted in ms
        self._last_us = 0
        self._first = True
        if config is None:
            try:
                data = hal.config_load()
            except Exception:  # noqa: BLE001 - a broken store must not stop the gimbal
                data = b"corrupt"
            config, ok = Config.from_bytes(data)
            if not ok:
                self.config_defaulted = True
                self.faults.raise_fault(FAULT_CONFIG_CORRUPT)
        self.calibrator = GyroCalibrator(1, 1)
        self.configure(config)

    def configure(self, cfg):
        """Apply a validated config: every part derives the integer parameters its tick uses."""
        g = cfg.get
        self.cfg = cfg
        self.period_us = 1000000 // g("loop_hz")
        hz = g("telemetry_hz")
        self.tel.configure(1000000 // hz if hz > 0 else 0, g("heartbeat_ms") * 1000)
        self.watchdog.timeout_us = g("failsafe_ms") * 1000
        self.faults.recover_us = g("fault_recover_ms") * 1000
        n = (g("calib_ms") * g("loop_hz")) // 1000
        still = int(g("calib_still_dps") * 65.5)
        if n != self.calibrator.n_samples or still != self.calibrator.still_counts:
            self.calibrator = GyroCalibrator(max(1, n), still)
        self.est.set_gains(g("est_kp"), g("est_ki"), g("accel_reject_g"))
        self.handle_ff.configure(g("handle_ff"))
        self.imu_mount = g("imu_mount")
        self.accel_off = (g("accel_off_x"), g("accel_off_y"), g("accel_off_z"))
        self.accel_scale_q12 = int(g("accel_scale") * 4096)
        self.modes.configure(cfg)
        self.drive.configure(cfg)
        self.light.configure(cfg)
        self.foc_needs_cal = self.foc.configure(cfg)
        a = cfg.axis
        self.torque_ff.configure(g("torque_ff_mu"), g("loop_hz"), self.foc.active,
                                 [a(i, "effort_limit_dps") * 1000 for i in range(3)])
        for i in range(3):
            # open-loop BLDC: the field may lead its rotor by 60 electrical degrees at most (90 slips a pole)
            lead = 60000000 // a(i, "pole_pairs") if a(i, "driver") == DRIVER_BLDC else 0
            self.axes[i].field_lead_udeg = lead
            self.axes[i].configure(
                a(i, "angle_kp"), a(i, "rate_kp"), a(i, "rate_ki"), a(i, "rate_kd_ms"), a(i, "rate_ff"),
                a(i, "max_rate_dps"), a(i, "effort_limit_dps"), a(i, "slew_dps2"),
                a(i, "joint_min_deg"), a(i, "joint_max_deg"),
            )

    # --- the tick ---------------------------------------------------------------

    @micropython.native
    def tick(self, now_us):
        """Run exactly one control tick at time ``now_us`` (integer microseconds)."""
        if self._first:
            self._first = False
            dt = self.period_us
            self.watchdog.start(now_us)
            self.tel.start(now_us)
        else:
            dt = ticks_diff(now_us, self._last_us)
            # a stalled, backward or jumping clock must not wreck the integrators
            if dt <= 0:
                dt = 1
            elif dt > 4 * self.period_us:
                dt = 4 * self.period_us
        self._last_us = now_us
        u = self._uptime_us + dt
        self._uptime_us = u
        if u >= 1000000:
            self._count_uptime()
        # the failsafe is decided before the control step, so the hold acts in the very tick that
        # reaches failsafe_ms after the last valid frame (frames are read after the step)
        if self.watchdog.check(now_us):
            self._link_lost()
        self._control(dt)
        self.link.poll(now_us)
        faults = self.faults
        tel = self.tel
        if faults.pending:
            tel.send_faults(faults, self.raw[0])
        due = tel.due(now_us)
        if due & _DUE_TELEMETRY:
            tel.send_telemetry(self.modes.mode, self.state_flags(), faults.flags, self.drive.on, self.loop_time_us,
                               now_us)
        if due & _DUE_HEARTBEAT:
            self._count_uptime()
            tel.send_heartbeat(self.uptime_ms_lo, self.uptime_ms_hi)

    def _count_uptime(self):
        # the whole ms in _uptime_us move into uptime_ms_lo/_hi (not every tick: two attribute writes fewer)
        u = self._uptime_us
        ms = u // 1000
        self._uptime_us = u - ms * 1000
        ms += self.uptime_ms_lo
        if ms > 65535:
            self.uptime_ms_hi = (self.uptime_ms_hi + (ms >> 16)) & 0xFFFF
            ms &= 0xFFFF
        self.uptime_ms_lo = ms

    @micropython.native
    def _control(self, dt):
        body = self.body
        raw = self.raw
        hal = self.hal
        if not hal.imu_read(raw):
            self._imu_fault(FAULT_IMU_READ)
            return
        off = self.accel_off
        to_body(raw, body, self.imu_mount, off[0], off[1], off[2], self.accel_scale_q12)
        # a stuck bus, or near 0 g for longer than a running stride's flight: several samples in a row
        if self.plausibility.dead(raw, body, dt):
            self._imu_fault(FAULT_IMU_IMPLAUSIBLE)
            return
        self.imu_ok = True
        handle_ok = hal.handle_imu_read(self.handle_raw)
        if not self.calibrated:
            self._calibrate(handle_ok)
            return
        est = self.est
        est.update(body, dt)
        fd = self.foc
        drive = self.drive
        if fd.calibrating:
            if fd.calibrate(hal, dt, drive.amp, drive.svpwm, drive.duty):
                self._foc_calibrated()
            return
        faults = self.faults
        if faults.flags & _IMU_FAULTS:
            if faults.imu_recovered(dt):
                self._start_motors()
            return
        if not drive.on:
            return
        modes = self.modes
        modes.update(dt, self.watchdog.active)
        ang = est.angle_udeg
        rate = est.rate_mdps
        target = modes.target_udeg
        ff = modes.ff_mdps
        axes = self.axes
        hff = None
        hf = self.handle_ff
        cancel = hf.cancel_mdps
        guard = handle_ok and hf.ready  # the handle's rate is known: the open-loop field guard runs
        if guard:
            hff = hf.update(self.handle_raw, axes[0].packed[S_JOINT] - OFF, axes[2].packed[S_JOINT] - OFF)
            if not hf.scale_q10:
                hff = None
        if fd.any_active:
            fd.measure(hal, axes)  # closed-loop axes: the measured joint angle, before the step
        fd_closed = fd.closed  # bit i: axis i's rotor was read this tick
        tune_axis = self.tune.axis
        # the axis controllers, in one call (the axis under a relay auto-tune is left out)
        limits = step_axes(axes, 7 if tune_axis < 0 else 7 ^ (1 << tune_axis), target, ff, ang, rate, dt)
        if guard or tune_axis >= 0:
            for i in range(3):
                c = axes[i]
                closed = (fd_closed >> i) & 1
                if i == tune_axis:
                    # the relay drives this axis' effort instead of its controller: on the rate
                    # (setpoint 0), or on the angle for an open-loop axis (its spring's resonance)
                    e = wrap_udeg(target[i] - ang[i])
                    u = self.tune.tuner.step(e if self.tune.on_angle else 0 - rate[i], dt)
                    if e > 20000000 or e < -20000000:  # the camera wandered 20 deg off: stop
                        self.tune.tuner.abort(TUNE_TOO_BIG)
                        u = 0
                    c.effort_mdps = u
                    if not closed:
                        c.add_joint_rate(u, dt)
                    continue
                if not closed:
                    if hff is not None:
                        # moves the commanded joint, which only open loop has; its limit replaces the step's
                        if c.add_joint_rate(hff[i], dt):
                            limits |= 1 << i
                        else:
                            limits &= ~(1 << i)
                    if guard:  # the joint's rate: the camera's plus the handle's (its cancelling rate)
                        c.hold_field(rate[i] + cancel[i], dt)
        tff = self.torque_ff
        if tff.enabled:
            if guard and tune_axis < 0:
                tff.update(axes[0].packed[S_JOINT] - OFF, axes[0].packed[S_EFFORT] - OFF,
                           axes[1].packed[S_EFFORT] - OFF, axes[2].packed[S_EFFORT] - OFF)
            else:
                tff.hold()
        drive.write(axes, fd)
        if tune_axis >= 0:
            self._tune_tick()
        faults.joint_limit(limits != 0, dt)

    def _calibrate(self, handle_ok):
        status = self.calibrator.add(self.body)
        self.handle_ff.calib_add(self.handle_raw, handle_ok, status, self.calibrator.n_samples)
        if status == CAL_DONE:
            self.calibrated = True
            self.faults.clear(FAULT_CALIBRATION_MOVED)
            self.est.reset(self.calibrator.accel_mean, self.calibrator.bias_mdps)
            if self.foc_needs_cal:
                # closed-loop axes without a stored sensor calibration: find it first
                self.foc.start_calibration()
                self.hal.motors_enable(True)
            else:
                self.set_mode(self.cfg.get("boot_mode"))
        elif status == CAL_MOVED:
            self.faults.raise_fault(FAULT_CALIBRATION_MOVED)

    def start_tune(self, axis, rule, relay_permille, hyst_cdps):
        """MSG_TUNE: a relay experiment on ``axis`` (motors on, a BLDC, not already tuning); an ACK status.

        A closed-loop axis: the relay on the camera rate. An open-loop axis:
        on the camera angle, at a sixteenth of the relay (the spring's
        resonance is barely damped: 10 % of the effort limit would swing
        the camera tens of degrees), hysteresis hyst_cdps * 10 udeg, and
        RULE_SPRING (firmware/autotune.py).
        """
        if not 0 <= axis <= 2 or not 1 <= relay_permille <= 1000 or rule > 2:
            return NACK_OUT_OF_RANGE
        if not self.drive.on or self.tune.axis >= 0 or self.drive.driver[axis] != DRIVER_BLDC:
            return NACK_NOT_READY
        limit = self.axes[axis].effort_limit_mdps
        relay = (limit // 1000) * relay_permille
        if not self.foc.active[axis]:
            self.tune.start(axis, rule, max(1, relay // 16), hyst_cdps * 10, relay_max_mdps=relay, on_angle=True)
            return ACK_OK
        # the relay may grow 8x (up to the effort limit) until its swing is six hystereses (cdps -> mdps)
        self.tune.start(axis, rule, relay, hyst_cdps * 10, relay_max_mdps=min(limit, 8 * relay))
        return ACK_OK

    def _tune_tick(self):
        t = self.tune
        tuner = t.tuner
        axis = t.axis
        if tuner.state == TUNE_RUNNING:
            if tuner.n != t.reported:  # a cycle more: tell the host
                t.reported = tuner.n
                self.tel.send_tune_status(axis, tuner.state, tuner.reason, tuner.n, 0, 0.0, t.gains)
            return
        state, reason, trial = t.result(self.cfg, axis_key)
        if trial is not None:
            self.configure(trial)
            try:
                self.hal.config_save(trial.to_bytes())
            except Exception:  # noqa: BLE001 - the gains hold until power-off
                pass
        c = self.axes[axis]
        c.reset(c.joint_udeg, self.est.rate_mdps[axis])  # bumpless back to the controller
        self.tel.send_tune_status(axis, state, reason, tuner.n, tuner.pu_us, t.ku, t.gains)

    def _foc_calibrated(self):
        """Sensor calibration finished: keep and save what it found, then enter the boot mode."""
        trial = self.cfg.copy()
        self.foc.store(trial)  # an axis that failed stays open-loop (foc.cal_reason says why)
        self.configure(trial)
        try:
            self.hal.config_save(trial.to_bytes())
        except Exception:  # noqa: BLE001 - the calibration still holds until power-off
            pass
        for i in range(3):
            self.axes[i].joint_udeg = 0  # every calibrated rotor ends at field 0: joint zero
        self.hal.motors_enable(False)
        self.set_mode(self.cfg.get("boot_mode"))

    def _imu_fault(self, flag):
        self.imu_ok = False
        if self.drive.on:
            self.drive.disable()
        self.faults.imu_failed(flag)

    def _link_lost(self):
        # hold the earth-frame attitude the camera has right now
        modes = self.modes
        if modes.mode == MODE_TRACK and self.calibrated:
            modes.hold_attitude()
        modes.hold_track()

    # --- modes and motors ---------------------------------------------------------

    def set_mode(self, mode):
        """Switch mode; returns ACK_OK or a NACK reason. Bumpless."""
        if not 0 <= mode < len(MODE_NAMES):
            return NACK_BAD_MODE
        if mode != MODE_OFF and (not self.calibrated or self.foc.calibrating):
            return NACK_NOT_READY
        imu_fault = self.faults.flags & IMU_FAULTS
        if mode != MODE_OFF and imu_fault:
            if not self.imu_ok:
                return NACK_NOT_READY
            self.faults.clear(imu_fault)
        self.modes.enter(mode)
        if mode == MODE_OFF:
            self.drive.disable()
        elif not self.drive.on:
            self._start_motors()
        return ACK_OK

    def _start_motors(self):
        if self.modes.mode == MODE_OFF:
            return
        for i in range(3):
            self.axes[i].reset(self.axes[i].joint_udeg, self.est.rate_mdps[i])
        self.modes.hold_attitude()
        self.drive.enable()

    @micropython.native
    def state_flags(self):
        s = 0
        if self.calibrated:
            s |= STATE_CALIBRATED
        if self.drive.on:
            s |= STATE_MOTORS_ON
        if self.watchdog.active:
            s |= STATE_FAILSAFE
        if self.config_defaulted:
            s |= STATE_CONFIG_DEFAULTED
        return s

    # --- status (what TELEMETRY reports), for tests and tools; the tick reads the parts ---

    @property
    def mode(self):
        return self.modes.mode

    @property
    def motors_on(self):
        return self.drive.on

    @property
    def failsafe(self):
        return self.watchdog.active

    @property
    def fault_flags(self):
        return self.faults.flags

    # --- the board loop ---------------------------------------------------------------

    def run_forever(self, max_ticks=-1, gc_free_min=32768):
        """Fixed-rate loop for boards: tick, then wait for the next period on the HAL's ticks.

        ``max_ticks >= 0`` stops after that many ticks (tests drive it with a
        simulated clock). An overrun raises FAULT loop_overrun and restarts
        the schedule from now instead of bursting to catch up. When free heap
        drops under ``gc_free_min`` bytes the loop collects garbage in the
        slack after a tick, a fixed point, instead of letting an allocation
        trigger it mid-tick (32-bit ports box the loop's large integers:
        see docs/firmware.md).
        """
        hal = self.hal
        mem_free = getattr(gc, "mem_free", None)  # MicroPython only
        due = hal.ticks_us()
        count = 0
        try:
            while count != max_ticks:
                start = hal.ticks_us()
                self.tick(start)
                self.loop_time_us = ticks_diff(hal.ticks_us(), start)
                if mem_free is not None and mem_free() < gc_free_min:
                    gc.collect()
                due = (due + self.period_us) & TICKS_MASK
                wait = ticks_diff(due, hal.ticks_us())
                if wait > 0:
                    hal.sleep_us(wait)
                elif wait < -self.period_us:
                    if not self.faults.flags & FAULT_LOOP_OVERRUN:
                        self.faults.raise_fault(FAULT_LOOP_OVERRUN)
                    due = hal.ticks_us()
                count += 1
        finally:
            # whatever ends the loop (Ctrl-C, an exception), leave the motors unpowered
            if self.drive.on:
                self.drive.disable()
