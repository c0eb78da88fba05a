"""The gimbal application: wires the cores to a HAL and runs one control tick at a time.

``Gimbal(hal).tick(now_us)`` is the whole firmware for one period: read the
IMU, calibrate or estimate, run the mode logic and the three axis
controllers, drive the motors, poll the link without blocking, and send
telemetry and heartbeats when due. ``run_forever()`` paces ``tick`` with the
board's ticks at ``loop_hz``; a simulator calls ``tick`` itself on simulated
time (see firmware/hal.py for the contract and the sign conventions).

    from firmware.app import Gimbal
    g = Gimbal(hal)              # config from hal.config_load(); corrupt -> defaults, reported
    g.tick(now_us)               # one tick; allocates nothing in steady state

Behaviour worth knowing:

- Motors stay off until the boot gyro calibration has passed (the gimbal
  must be still for ``calib_ms``; movement restarts it and raises FAULT
  calibration_moved), then the ``boot_mode`` is entered.
- An IMU read error or implausible sample turns the motors off at once and
  raises FAULT imu_read / imu_implausible. After ``fault_recover_ms`` of good
  samples the motors come back (bumplessly); with ``fault_recover_ms = 0`` a
  MODE command is needed.
- Link failsafe: no valid SETPOINT or HEARTBEAT for ``failsafe_ms`` sets
  STATE_FAILSAFE; in track mode the camera then holds the earth-frame
  attitude it had at that moment, until the next valid SETPOINT.
- Mode changes are bumpless: targets continue from where they are and the
  controllers keep their state (they are reset only when motors start).
"""

import gc
import struct
from array import array

from .config import DRIVER_BLDC, DRIVER_SERVO, KEYS, Config
from .control import AxisController, HandleFeedForward
from .estimator import AttitudeEstimator
from .fixmath import TICKS_MASK, ticks_diff, wrap_udeg
from .imu import CAL_DONE, CAL_MOVED, GyroCalibrator, implausible, to_body
from .motor import bldc_amplitude, bldc_duties, servo_pulse_us
from .protocol import (  # names, not module attributes: faster lookups per tick
    ACK_OK,
    CAP_BLDC,
    CAP_CONFIG_STORE,
    CAP_SERVO,
    FAULT_CALIBRATION_MOVED,
    FAULT_CONFIG_CORRUPT,
    FAULT_IMU_IMPLAUSIBLE,
    FAULT_IMU_READ,
    FAULT_JOINT_LIMIT,
    FAULT_LINK_LOST,
    FAULT_LOOP_OVERRUN,
    MAX_FRAME,
    MODE_FOLLOW,
    MODE_LOCK,
    MODE_NAMES,
    MODE_OFF,
    MODE_PAN_FOLLOW,
    MODE_RECENTRE,
    MODE_TRACK,
    MSG_ACK,
    MSG_CONFIG_GET,
    MSG_CONFIG_SAVE,
    MSG_CONFIG_SET,
    MSG_CONFIG_VALUE,
    MSG_FAULT,
    MSG_HEARTBEAT,
    MSG_MODE,
    MSG_SETPOINT,
    MSG_TELEMETRY,
    MSG_VERSION,
    MSG_VERSION_REQUEST,
    NACK_BAD_LENGTH,
    NACK_BAD_MODE,
    NACK_NOT_READY,
    NACK_STORAGE_ERROR,
    NACK_UNKNOWN_KEY,
    PAYLOAD_OFFSET,
    PROTOCOL_VERSION,
    ROLE_DEVICE,
    ROLE_HOST,
    SIZES,
    STATE_CALIBRATED,
    STATE_CONFIG_DEFAULTED,
    STATE_FAILSAFE,
    STATE_MOTORS_ON,
    Parser,
    clamp_i16,
    encode_into,
    get_i16,
    pack,
    put_u16,
)

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]

_FF_MAX = const(1048575)  # follow feed-forward clamp, mdps
_SP_RATE = const(0x01)  # protocol.SP_YAW_IS_RATE (imported names are not constants to viper)
_SP_EARTH = const(0x08)  # protocol.SP_YAW_IN_EARTH_FRAME

FW_VERSION = (0, 1, 0)
_CAPABILITIES = CAP_BLDC | CAP_SERVO | CAP_CONFIG_STORE
_RX_CHUNK = 64  # bytes read from the link per tick at most (115200 baud = 12 per ms)
_TEL_LEN = SIZES[MSG_TELEMETRY]
_HB_LEN = SIZES[MSG_HEARTBEAT]

def _fault_bit(flag):
    i = 0
    while flag > 1:
        flag >>= 1
        i += 1
    return i


class Gimbal:
    def __init__(self, hal, config=None):
        self.hal = hal
        self.raw = array("h", [0, 0, 0, 0, 0, 0])
        self.handle_raw = array("h", [0, 0, 0, 0, 0, 0])  # the optional handle IMU (HAL.handle_imu_read)
        self.handle_ff = HandleFeedForward()
        self.body = [0, 0, 0, 0, 0, 0]
        self.rx = bytearray(_RX_CHUNK)
        self.tx = bytearray(MAX_FRAME)
        # one view per frame length, so sending a frame slices nothing
        mv = memoryview(self.tx)
        self._views = [mv[:n] for n in range(MAX_FRAME + 1)]
        self.parser = Parser()
        self.est = AttitudeEstimator()
        self.axes = [AxisController(), AxisController(), AxisController()]
        self.duty = [0, 0, 0]
        self.target_udeg = [0, 0, 0]
        self.ff_mdps = [0, 0, 0]
        self.track_udeg = [0, 0, 0]  # integrated rate setpoint: target (earth) or offset from the handle
        self.track_frac = [0, 0, 0]  # ndeg below track_udeg, 0..999
        self.sp_flags = 0
        self.sp_value = [0, 0, 0]  # last SETPOINT, cdeg or cdps
        self.sp_valid = False  # a SETPOINT arrived since track mode began or the link came back
        self._track_kind = [0, 0, 0]  # per axis: 0 angle, 1 handle-frame rate, 2 earth-frame rate
        self.mode = MODE_OFF
        self.calibrated = False
        self.motors_on = False
        self.failsafe = False
        self.link_seen = False
        self.fault_flags = 0
        self.config_defaulted = False
        self.loop_time_us = 0
        self.uptime_ms_lo = 0  # uptime in ms, 32 bits as two 16-bit halves (small ints on any port)
        self.uptime_ms_hi = 0
        self._uptime_us = 0  # us not yet counted in ms, 0..999
        self.tx_seq = 0
        self.imu_ok = False
        self._imu_good_us = 0
        self._off_limit_us = 0
        self._last_us = 0
        self._first = True
        self._last_link_us = 0
        self._next_tel_us = 0
        self._next_hb_us = 0
        self._pending_fault = 0
        # boards whose link is the REPL console set this: see _poll_link
        self.escape_to_repl = False
        self._ctrl_c = 0
        if config is None:
            try:
                data = hal.config_load()
            except Exception:  # noqa: BLE001 - a broken store must not stop the gimbal
                data = b"corrupt"
            config, ok = Config.from_bytes(data)
            if not ok:
                self.config_defaulted = True
                self._raise_fault(FAULT_CONFIG_CORRUPT)
        self.calibrator = GyroCalibrator(1, 1)
        self.cfg = config
        self._apply_config(config)

    # --- configuration ------------------------------------------------------

    def _apply_config(self, cfg):
        """Derive the integer parameters the tick uses. Only called with validated configs."""
        g = cfg.get
        self.cfg = cfg
        self.period_us = 1000000 // g("loop_hz")
        hz = g("telemetry_hz")
        self.telemetry_period_us = 1000000 // hz if hz > 0 else 0
        self.heartbeat_period_us = g("heartbeat_ms") * 1000
        self.failsafe_us = g("failsafe_ms") * 1000
        self.fault_recover_us = g("fault_recover_ms") * 1000
        self.follow_tc_us = int(g("follow_tc_s") * 1e6)
        self.follow_q12 = int(4096e6 / self.follow_tc_us)  # mdps per mdeg of error, Q12
        self.recentre_mdps = int(g("recentre_dps") * 1000)
        n = (g("calib_ms") * g("loop_hz")) // 1000
        still = int(g("calib_still_dps") * 65.5)
        if n != self.calibrator.n_samples or still != self.calibrator.still_counts:
            self.calibrator = GyroCalibrator(max(1, n), still)
        self.est.set_gains(g("est_kp"), g("est_ki"), g("accel_reject_g"))
        self.handle_ff.configure(g("handle_ff"))
        self.imu_mount = g("imu_mount")
        self.accel_off = (g("accel_off_x"), g("accel_off_y"), g("accel_off_z"))
        self.accel_scale_q12 = int(g("accel_scale") * 4096)
        self.svpwm = g("commutation") == 1
        old_driver = getattr(self, "driver", None)
        if old_driver is not None and self.motors_on:
            # an axis switched to another driver at run time: silence the old output
            for i in range(3):
                if old_driver[i] != cfg.axis(i, "driver"):
                    self._silence(i, old_driver[i])
        self.driver = [0, 0, 0]
        self.pole_pairs = [0, 0, 0]
        self.amp = [0, 0, 0]
        self.motor_dir = [0, 0, 0]
        self.servo_q8 = [0, 0, 0]
        self.deadband_udeg = [0, 0, 0]
        for i in range(3):
            a = cfg.axis
            self.axes[i].configure(
                a(i, "angle_kp"), a(i, "rate_kp"), a(i, "rate_ki"), a(i, "rate_kd_ms"), a(i, "rate_ff"),
                a(i, "max_rate_dps"), a(i, "effort_limit_dps"), a(i, "slew_dps2"),
                a(i, "joint_min_deg"), a(i, "joint_max_deg"),
            )
            self.driver[i] = a(i, "driver")
            self.pole_pairs[i] = a(i, "pole_pairs")
            self.amp[i] = bldc_amplitude(a(i, "power_permille"), self.svpwm)
            self.motor_dir[i] = a(i, "motor_dir")
            self.servo_q8[i] = int(a(i, "servo_us_per_deg") * 256)
            self.deadband_udeg[i] = int(a(i, "follow_deadband_deg") * 1e6)

    # --- the tick ---------------------------------------------------------------

    @micropython.native
    def tick(self, now_us):
        """Run exactly one control tick at time ``now_us`` (integer microseconds)."""
        if self._first:
            self._first = False
            dt = self.period_us
            self._last_link_us = now_us
            self._next_tel_us = now_us
            self._next_hb_us = now_us
        else:
            dt = ticks_diff(now_us, self._last_us)
            # a stalled, backward or jumping clock must not wreck the integrators
            if dt <= 0:
                dt = 1
            elif dt > 4 * self.period_us:
                dt = 4 * self.period_us
        self._last_us = now_us
        u = self._uptime_us + dt
        if u >= 1000:
            ms = u // 1000
            u -= ms * 1000
            ms += self.uptime_ms_lo
            if ms > 65535:
                self.uptime_ms_hi = (self.uptime_ms_hi + (ms >> 16)) & 0xFFFF
                ms &= 0xFFFF
            self.uptime_ms_lo = ms
        self._uptime_us = u
        self._control(dt)
        self._poll_link(now_us)
        lost = ticks_diff(now_us, self._last_link_us) > self.failsafe_us
        if lost != self.failsafe:
            self._link_changed(lost)
        if self._pending_fault:
            self._send_fault()
        if self.telemetry_period_us and ticks_diff(now_us, self._next_tel_us) >= 0:
            self._next_tel_us = self._next_due(self._next_tel_us, self.telemetry_period_us, now_us)
            self._send_telemetry()
        if self.heartbeat_period_us and ticks_diff(now_us, self._next_hb_us) >= 0:
            self._next_hb_us = self._next_due(self._next_hb_us, self.heartbeat_period_us, now_us)
            self._send_heartbeat()

    @staticmethod
    def _next_due(due, period, now_us):
        due += period
        if ticks_diff(now_us, due) >= period:  # fell behind: do not burst to catch up
            due = now_us + period
        return due & TICKS_MASK  # ticks_diff is exact against wrapped or unwrapped clocks

    @micropython.native
    def _control(self, dt):
        body = self.body
        raw = self.raw
        if not self.hal.imu_read(raw):
            self._imu_fault(FAULT_IMU_READ)
            return
        off = self.accel_off
        to_body(raw, body, self.imu_mount, off[0], off[1], off[2], self.accel_scale_q12)
        if implausible(body):
            self._imu_fault(FAULT_IMU_IMPLAUSIBLE)
            return
        self.imu_ok = True
        handle_ok = self.hal.handle_imu_read(self.handle_raw)
        if not self.calibrated:
            status = self.calibrator.add(body)
            self.handle_ff.calib_add(self.handle_raw, handle_ok, status, self.calibrator.n_samples)
            if status == CAL_DONE:
                self.calibrated = True
                self.fault_flags &= ~FAULT_CALIBRATION_MOVED
                self.est.reset(self.calibrator.accel_mean, self.calibrator.bias_mdps)
                self.set_mode(self.cfg.get("boot_mode"))
            elif status == CAL_MOVED:
                self._raise_fault(FAULT_CALIBRATION_MOVED)
            return
        est = self.est
        est.update(body, dt)
        if self.fault_flags & (FAULT_IMU_READ | FAULT_IMU_IMPLAUSIBLE):
            self._imu_good_us += dt
            if self.fault_recover_us and self._imu_good_us >= self.fault_recover_us:
                self.fault_flags &= ~(FAULT_IMU_READ | FAULT_IMU_IMPLAUSIBLE)
                self._start_motors()
            return
        if not self.motors_on:
            return
        if self.mode != MODE_LOCK:
            self._targets(dt)
        ang = est.angle_udeg
        rate = est.rate_mdps
        limit = False
        hal = self.hal
        driver = self.driver
        axes = self.axes
        target = self.target_udeg
        ff = self.ff_mdps
        d = self.duty
        pole_pairs = self.pole_pairs
        motor_dir = self.motor_dir
        amp = self.amp
        svpwm = self.svpwm
        hff = None
        if handle_ok and self.handle_ff.ready and self.handle_ff.scale_q10:
            hff = self.handle_ff.update(self.handle_raw, axes[0].joint_udeg, axes[2].joint_udeg)
        for i in range(3):
            c = axes[i]
            c.step(target[i], ff[i], ang[i], rate[i], dt)
            if hff is not None:
                c.add_joint_rate(hff[i], dt)
            if c.at_limit:
                limit = True
            drv = driver[i]
            if drv == DRIVER_BLDC:
                bldc_duties(c.joint_udeg, pole_pairs[i], motor_dir[i], amp[i], svpwm, d)
                hal.bldc_write(i, d[0], d[1], d[2])
            elif drv == DRIVER_SERVO:
                hal.servo_write(i, servo_pulse_us(c.joint_udeg, motor_dir[i], self.servo_q8[i]))
        if limit:
            self._off_limit_us = 0
            if not self.fault_flags & FAULT_JOINT_LIMIT:
                self._raise_fault(FAULT_JOINT_LIMIT)
        elif self.fault_flags & FAULT_JOINT_LIMIT:
            # clear only after 200 ms off the limits: no FAULT chatter at the boundary
            self._off_limit_us += dt
            if self._off_limit_us >= 200000:
                self.fault_flags &= ~FAULT_JOINT_LIMIT

    def _imu_fault(self, flag):
        self.imu_ok = False
        self._imu_good_us = 0
        if self.motors_on:
            self._stop_motors()
        if not self.fault_flags & flag:
            self._raise_fault(flag)

    # --- modes -------------------------------------------------------------------

    @micropython.viper
    def handle_udeg(self, i: int) -> int:
        """The handle's angle about axis i, seen from the camera: camera angle minus joint angle."""
        return int(wrap_udeg(int(self.est.angle_udeg[i]) - int(self.axes[i].joint_udeg)))

    def set_mode(self, mode):
        """Switch mode; returns ACK_OK or a NACK reason. Bumpless."""
        if not 0 <= mode < len(MODE_NAMES):
            return NACK_BAD_MODE
        if mode != MODE_OFF and not self.calibrated:
            return NACK_NOT_READY
        imu_fault = self.fault_flags & (FAULT_IMU_READ | FAULT_IMU_IMPLAUSIBLE)
        if mode != MODE_OFF and imu_fault:
            if not self.imu_ok:
                return NACK_NOT_READY
            self.fault_flags &= ~imu_fault
        self.mode = mode
        for i in range(3):
            self.ff_mdps[i] = 0
        self._hold_track()
        if mode == MODE_OFF:
            self._stop_motors()
        elif not self.motors_on:
            self._start_motors()
        return ACK_OK

    def _hold_track(self):
        # forget the host's setpoint until a new one arrives
        self.sp_valid = False
        for i in range(3):
            self._track_kind[i] = 0

    def _start_motors(self):
        if self.mode == MODE_OFF:
            return
        for i in range(3):
            self.axes[i].reset(self.axes[i].joint_udeg, self.est.rate_mdps[i])
            self.target_udeg[i] = self.est.angle_udeg[i]
            self.ff_mdps[i] = 0
        self.motors_on = True
        self.hal.motors_enable(True)

    def _stop_motors(self):
        self.motors_on = False
        for i in range(3):
            self._silence(i, self.driver[i])
        self.hal.motors_enable(False)

    def _silence(self, i, driver):
        if driver == DRIVER_BLDC:
            self.hal.bldc_write(i, 0, 0, 0)
        elif driver == DRIVER_SERVO:
            self.hal.servo_write(i, 0)

    @micropython.native
    def _targets(self, dt):
        """Per-mode angle targets and rate feed-forward for the three axes."""
        mode = self.mode
        for i in range(3):
            self.ff_mdps[i] = 0
        if mode == MODE_PAN_FOLLOW:
            self._follow(0, dt)
        elif mode == MODE_FOLLOW:
            self._follow(0, dt)
            self._follow(1, dt)
        elif mode == MODE_TRACK:
            if not self.failsafe:
                self._track(dt)
        elif mode == MODE_RECENTRE:
            done = True
            for i in range(3):
                if not self._recentre(i, dt):
                    done = False
            if done:
                self.mode = MODE_LOCK
                for i in range(3):
                    self.ff_mdps[i] = 0

    @micropython.native
    def _follow(self, i, dt):
        # the target trails the handle outside a deadband, smoothed with time constant follow_tc
        err = wrap_udeg(self.handle_udeg(i) - self.target_udeg[i])
        db = self.deadband_udeg[i]
        if err > db:
            err -= db
        elif err < -db:
            err += db
        else:
            return
        # ff = err / follow_tc (mdps), from the error in mdeg split at 2**8; the
        # target moves ff * dt, split in deg/s and mdps (no product leaves 2**30)
        err //= 1000
        g = self.follow_q12
        ff = ((err >> 8) * g + (((err & 255) * g) >> 8)) >> 4
        if ff > _FF_MAX:
            ff = _FF_MAX
        elif ff < -_FF_MAX:
            ff = -_FF_MAX
        x = ff // 1000
        self.target_udeg[i] = wrap_udeg(self.target_udeg[i] + x * dt + ((ff - x * 1000) * dt) // 1000)
        self.ff_mdps[i] = ff

    @micropython.native
    def _recentre(self, i, dt):
        # move the target to the handle (joint angle 0) at recentre_dps; True when there
        err = wrap_udeg(self.handle_udeg(i) - self.target_udeg[i])
        v = self.recentre_mdps
        step = (v // 1000) * dt + ((v % 1000) * dt) // 1000  # v * dt // 1000, split
        if -step <= err <= step:
            self.target_udeg[i] = wrap_udeg(self.target_udeg[i] + err)
            joint = self.axes[i].joint_udeg
            return -500000 <= joint <= 500000
        if err > 0:
            self.target_udeg[i] = wrap_udeg(self.target_udeg[i] + step)
            self.ff_mdps[i] = v
        else:
            self.target_udeg[i] = wrap_udeg(self.target_udeg[i] - step)
            self.ff_mdps[i] = -v
        return False

    @micropython.viper
    def _track(self, dt: int):
        # Host setpoints, per axis: an angle (earth frame, or relative to the
        # handle) is the target; a rate is integrated into the target (earth
        # frame) or into the offset from the handle, and fed forward.
        # Viper: every value within +-2**30.
        if not self.sp_valid:
            return
        flags = int(self.sp_flags)
        spv = self.sp_value
        kinds = self._track_kind
        tu = self.track_udeg
        tf = self.track_frac
        tgt = self.target_udeg
        ff = self.ff_mdps
        for i in range(3):
            v = int(spv[i])
            earth = flags & (_SP_EARTH << i)
            handle = 0 if earth else int(self.handle_udeg(i))
            if flags & (_SP_RATE << i):
                kind = 2 if earth else 1
                if int(kinds[i]) != kind:
                    # start integrating from where the target is now: bumpless
                    kinds[i] = kind
                    start = int(tgt[i])
                    if not earth:
                        start = int(wrap_udeg(start - handle))
                    tu[i] = start
                    tf[i] = 0
                rate = v * 10  # cdps -> mdps
                # += rate * dt ndeg, as udeg + ndeg remainder (exact, small ints)
                x = rate // 1000
                f = int(tf[i]) + (rate - x * 1000) * dt
                t = int(wrap_udeg(int(tu[i]) + x * dt + f // 1000))
                tf[i] = f % 1000
                tu[i] = t
                ff[i] = rate
                if earth:
                    tgt[i] = t
                else:
                    tgt[i] = wrap_udeg(handle + t)
            else:
                kinds[i] = 0
                tgt[i] = wrap_udeg(handle + v * 10000)  # cdeg -> udeg

    # --- link --------------------------------------------------------------------

    @micropython.native
    def _poll_link(self, now_us):
        n = self.hal.serial_read_into(self.rx)
        if n <= 0:
            return
        if n > _RX_CHUNK:
            n = _RX_CHUNK
        p = self.parser
        rx = self.rx
        for k in range(n):
            b = rx[k]
            if b == 3 and self.escape_to_repl and self.failsafe:
                # Ctrl-C three times while no host is talking: hand the console back
                self._ctrl_c += 1
                if self._ctrl_c >= 3:
                    raise KeyboardInterrupt
            else:
                self._ctrl_c = 0
            mid = p.feed(b)
            while mid >= 0:
                self._handle(mid, now_us)
                mid = p.flush()

    def _link_changed(self, lost):
        if lost:
            self.failsafe = True
            if self.link_seen:
                self._raise_fault(FAULT_LINK_LOST)
            # hold the earth-frame attitude the camera has right now
            if self.mode == MODE_TRACK and self.calibrated:
                for i in range(3):
                    self.target_udeg[i] = self.est.angle_udeg[i]
                    self.ff_mdps[i] = 0
            self._hold_track()
        else:
            self.failsafe = False
            self.fault_flags &= ~FAULT_LINK_LOST

    def _handle(self, mid, now_us):
        p = self.parser
        buf = p.buf
        o = PAYLOAD_OFFSET
        try:
            if mid == MSG_SETPOINT:
                self.sp_flags = buf[o]
                self.sp_value[0] = get_i16(buf, o + 1)
                self.sp_value[1] = get_i16(buf, o + 3)
                self.sp_value[2] = get_i16(buf, o + 5)
                self.sp_valid = True
                self._link_alive(now_us)
            elif mid == MSG_HEARTBEAT:
                if buf[o] == ROLE_HOST:
                    self._link_alive(now_us)
            elif mid == MSG_VERSION_REQUEST:
                self._send_version()
            elif mid == MSG_MODE:
                self._send_ack(mid, p.seq, self.set_mode(buf[o]))
            elif mid == MSG_CONFIG_GET:
                key = buf[o]
                if key in KEYS:
                    self._send_config_value(key)
                else:
                    self._send_ack(mid, p.seq, NACK_UNKNOWN_KEY)
            elif mid == MSG_CONFIG_SET:
                self._config_set(buf[o], struct.unpack_from("<f", buf, o + 1)[0], p.seq)
            elif mid == MSG_CONFIG_SAVE:
                self._config_save(p.seq)
            # The parser drops ids this protocol version does not define, and the
            # device's own messages echoed back need no answer.
        except Exception:  # noqa: BLE001 - bytes from outside must never stop the loop
            self._send_ack(mid, p.seq, NACK_BAD_LENGTH)

    def _link_alive(self, now_us):
        self._last_link_us = now_us
        self.link_seen = True
        if self.failsafe:
            self.failsafe = False
            self.fault_flags &= ~FAULT_LINK_LOST

    def _config_set(self, key, value, seq):
        trial = self.cfg.copy()
        status = trial.set(key, value)
        if status != ACK_OK:
            self._send_ack(MSG_CONFIG_SET, seq, status)
            return
        self._apply_config(trial)
        self._send_config_value(key)

    def _config_save(self, seq):
        try:
            ok = self.hal.config_save(self.cfg.to_bytes())
        except Exception:  # noqa: BLE001 - report, do not crash
            ok = False
        self._send_ack(MSG_CONFIG_SAVE, seq, ACK_OK if ok else NACK_STORAGE_ERROR)

    # --- sending -------------------------------------------------------------------

    @micropython.native
    def _send(self, msg_id, payload_len):
        n = encode_into(self.tx, msg_id, self.tx_seq, payload_len)
        self.tx_seq = (self.tx_seq + 1) & 0xFF
        self.hal.serial_write(self._views[n])

    @micropython.native
    def state_flags(self):
        s = 0
        if self.calibrated:
            s |= STATE_CALIBRATED
        if self.motors_on:
            s |= STATE_MOTORS_ON
        if self.failsafe:
            s |= STATE_FAILSAFE
        if self.config_defaulted:
            s |= STATE_CONFIG_DEFAULTED
        return s

    @micropython.native
    def _send_telemetry(self):
        b = self.tx
        o = PAYLOAD_OFFSET
        b[o] = self.mode
        b[o + 1] = self.state_flags()
        put_u16(b, o + 2, self.fault_flags)
        ang = self.est.angle_udeg
        rate = self.est.rate_mdps
        for i in range(3):
            put_u16(b, o + 4 + 2 * i, clamp_i16(ang[i] // 10000))
            put_u16(b, o + 10 + 2 * i, clamp_i16(rate[i] // 10))
            c = self.axes[i]
            put_u16(b, o + 16 + 2 * i, clamp_i16(c.joint_udeg // 10000))
            put_u16(b, o + 22 + 2 * i, clamp_i16(c.effort_permille() if self.motors_on else 0))
        put_u16(b, o + 28, self.loop_time_us if self.loop_time_us < 65535 else 65535)
        self._send(MSG_TELEMETRY, _TEL_LEN)

    def _send_heartbeat(self):
        b = self.tx
        o = PAYLOAD_OFFSET
        b[o] = ROLE_DEVICE
        put_u16(b, o + 1, self.uptime_ms_lo)
        put_u16(b, o + 3, self.uptime_ms_hi)
        self._send(MSG_HEARTBEAT, _HB_LEN)

    def _send_ack(self, msg_id, seq, status):
        # "<BBB" written in place: no payload object (an ACK may answer a MODE inside a tick)
        b = self.tx
        o = PAYLOAD_OFFSET
        b[o] = msg_id & 0xFF
        b[o + 1] = seq & 0xFF
        b[o + 2] = status
        self._send(MSG_ACK, 3)

    def _send_payload(self, msg_id, payload):
        o = PAYLOAD_OFFSET
        self.tx[o:o + len(payload)] = payload
        self._send(msg_id, len(payload))

    def _send_version(self):
        major, minor, patch = FW_VERSION
        board = getattr(self.hal, "board_id", 0)
        payload = pack(MSG_VERSION, PROTOCOL_VERSION, major, minor, patch,
                                board, _CAPABILITIES)
        self._send_payload(MSG_VERSION, payload)

    def _send_config_value(self, key):
        self._send_payload(MSG_CONFIG_VALUE, pack(MSG_CONFIG_VALUE, key,
                                                                    self.cfg.values[key]))

    def _raise_fault(self, flag):
        self.fault_flags |= flag
        self._pending_fault |= flag

    def _send_fault(self):
        pending = self._pending_fault
        while pending:
            low = pending & -pending  # one FAULT message per new fault, lowest bit first
            pending &= ~low
            detail = 0
            if low == FAULT_IMU_READ or low == FAULT_IMU_IMPLAUSIBLE:
                detail = self.raw[0]
            # "<HBh" written in place, like _send_ack
            b = self.tx
            o = PAYLOAD_OFFSET
            put_u16(b, o, self.fault_flags)
            b[o + 2] = _fault_bit(low)
            put_u16(b, o + 3, clamp_i16(detail))
            self._send(MSG_FAULT, 5)
        self._pending_fault = 0

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
                    if not self.fault_flags & FAULT_LOOP_OVERRUN:
                        self._raise_fault(FAULT_LOOP_OVERRUN)
                    due = hal.ticks_us()
                count += 1
        finally:
            # whatever ends the loop (Ctrl-C, an exception), leave the motors unpowered
            if self.motors_on:
                self._stop_motors()
