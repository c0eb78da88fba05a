"""Field-oriented commutation on a rotor-angle sensor, and its start-up calibration.

Open-loop drive (firmware/motor.py ``bldc_duties``) puts the field where the
rotor should be and lets it pull the rotor there like a spring. With a
sensor on the shaft (firmware/angle_sensor.py) the firmware knows where the
rotor is, and puts the field a quarter electrical turn (90 deg) ahead of it:
all of the current then makes torque, and the amplitude is the torque
command. The inner loop becomes a torque loop instead of a field-angle
spring (SimpleFOC's voltage-mode torque control does the same).

    e = rotor_elec_index(counts, bits, pole_pairs, sensor_dir, elec_zero)
    foc_duties(e, torque_amp, svpwm, out)      # out: 3 x duty_u16; sign of amp = torque sign

Electrical angles are sin-table indices (fixmath.SIN_STEPS = 1536 per turn).
``sensor_dir`` (+1/-1) says whether the sensor counts up as the field index
rises, ``elec_zero`` is the sensor's electrical index when the rotor sits
aligned with field index 0. Both are found at start-up by
:class:`FocCalibrator`, which drives the field round one electrical turn
forwards, back and forwards again at a fixed amplitude and watches the
sensor; the firmware stores them in config (``<axis>_foc_zero``,
``<axis>_sensor_dir``).
"""

from array import array

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython, ptr32  # type: ignore[assignment,no-redef]

from .angle_sensor import counts_to_udeg
from .config import axis_key
from .fixmath import SIN_Q15
from .motor import phase_duties

_STEPS = const(1536)  # fixmath.SIN_STEPS (imported names are not constants to viper)
_HALF = const(768)
_QUARTER = const(384)
_FF_OFF = const(0x20000000)  # torque_ff.OFF (imported names are not constants to viper)
# AxisController.packed (firmware/control.py): the words measure() and fields() use, stored + OFF but the gain
_G_EFFORT_LIMIT = const(0)  # control._G_EFFORT_LIMIT
_S_JOINT = const(11)  # control.S_JOINT
_S_FRAC = const(12)  # control.S_FRAC
_S_EFFORT = const(13)  # control.S_EFFORT
_OFF = const(0x20000000)  # control.OFF
# MotorDrive.fields (motor.F_*): what fields() reads and writes for phase_duties_axes
_F_INDEX = const(0)  # motor.F_INDEX
_F_AMP = const(1)  # motor.F_AMP
_F_POWER = const(2)  # motor.F_POWER
_F_STRIDE = const(3)  # motor.F_STRIDE
_F_OFF = const(0x20000000)  # motor.F_OFF


@micropython.viper
def rotor_elec_index(counts: int, bits: int, pole_pairs: int, sensor_dir: int, zero: int) -> int:
    """The rotor's electrical angle (0..1535) from a sensor reading; products within +-2**30."""
    mask = (1 << bits) - 1
    c = counts if sensor_dir > 0 else (0 - counts) & mask
    m = (c * pole_pairs) & mask  # where in its electrical turn the rotor is, in counts
    return (((m * _STEPS) >> bits) - zero) % _STEPS


@micropython.viper
def foc_duties(rotor_index: int, torque_amp: int, svpwm: int, out):
    """Duties for a field 90 deg ahead of the rotor; ``torque_amp`` in duty counts, signed."""
    phase_duties(rotor_index + _QUARTER, torque_amp, svpwm, out)


@micropython.viper
def wrap_index(d: int) -> int:
    """An electrical index difference wrapped to -768..767."""
    return (d + _HALF) % _STEPS - _HALF


# FocCalibrator phases
CAL_IDLE = const(0)
CAL_SETTLE = const(1)
CAL_PROBE = const(2)  # forwards: which way does the sensor count?
CAL_BACK = const(3)  # backwards, then forwards again: offsets averaged over both
CAL_FORTH = const(4)
CAL_RETURN = const(5)  # back to where it started (field 0), so the joint ends where it began
CAL_DONE = const(6)
CAL_FAILED = const(7)

# failure reasons (FocCalibrator.reason)
FAIL_NONE = const(0)
FAIL_SENSOR = const(1)  # the sensor did not answer
FAIL_NO_MOTION = const(2)  # the rotor did not follow the field (motor unpowered, stuck, or sensor off the shaft)
FAIL_POLE_PAIRS = const(3)  # it moved, but not 1/pole_pairs of a turn: pole_pairs or the sensor is wrong
FAIL_NOISY = const(4)  # within one sweep the rotor swung more than 90 electrical degrees about the field
_MAX_SWING = const(384)


class FocCalibrator:
    """Finds ``sensor_dir`` and ``elec_zero`` for one motor, one tick at a time (time passed in).

        cal = FocCalibrator(bits=14, pole_pairs=7)
        cal.start()
        while cal.phase < CAL_DONE:
            counts = sensor.read()
            field = cal.step(counts, dt_us)        # drive the field at this index, amplitude cal.amp
            phase_duties(field, amp, svpwm, out)
        cal.sensor_dir, cal.elec_zero, cal.reason, cal.zero_counts   # zero_counts: the sensor at field 0

    Each sweep turns the field one electrical turn in ``sweep_us``; the
    rotor lags the field by friction and gravity, the same amount backwards
    as forwards with opposite sign, so averaging the two sweeps cancels it.
    """

    def __init__(self, bits, pole_pairs, settle_us=300000, sweep_us=1000000):
        if bits not in (12, 14):
            raise ValueError("sensor bits must be 12 (AS5600) or 14 (AS5048A), got %r" % (bits,))
        if not 1 <= pole_pairs <= 64:
            raise ValueError("pole_pairs must be 1..64, got %r" % (pole_pairs,))
        if settle_us <= 0 or sweep_us < 10000:
            raise ValueError("settle_us must be > 0 and sweep_us >= 10000, got %r, %r" % (settle_us, sweep_us))
        self.bits = bits
        self.pole_pairs = pole_pairs
        self.settle_us = settle_us
        self.sweep_us = sweep_us
        self.phase = CAL_IDLE
        self.reason = FAIL_NONE
        self.sensor_dir = 0
        self.elec_zero = -1
        self.field = 0
        self._t_us = 0
        self.zero_counts = 0
        self._ref = 0
        self._sum = 0
        self._n = 0
        self._lo = 0
        self._hi = 0
        self._back_mean = 0

    def start(self):
        self.phase = CAL_SETTLE
        self.reason = FAIL_NONE
        self.sensor_dir = 0
        self.elec_zero = -1
        self.field = 0
        self._t_us = 0
        self._n = 0

    def _fail(self, reason):
        self.phase = CAL_FAILED
        self.reason = reason
        return self.field

    def step(self, counts, dt_us):
        """Advance by ``dt_us`` with this tick's sensor reading; return the field index to drive now."""
        phase = self.phase
        if phase == CAL_IDLE or phase >= CAL_DONE:
            return self.field
        if counts < 0:
            return self._fail(FAIL_SENSOR)
        self._t_us += dt_us
        t = self._t_us
        if phase == CAL_SETTLE:
            self.field = 0
            if t >= self.settle_us:
                self.zero_counts = counts
                self._next(CAL_PROBE)
            return self.field
        if phase == CAL_FORTH or phase == CAL_BACK:
            self._add(counts)
        if t >= self.sweep_us:
            t = self.sweep_us
        # one turn along u - sin(2 pi u) / (2 pi), u = t / sweep: it starts and stops at zero speed,
        # so the rotor (a mass on the field's magnetic spring) is not set ringing
        u = (t * _STEPS) // self.sweep_us  # 0..1536
        f = u - (SIN_Q15[u % _STEPS] * _STEPS) // 205887  # 2 pi * 32767
        if phase == CAL_BACK or phase == CAL_RETURN:
            f = _STEPS - f
        self.field = f % _STEPS
        if self._t_us >= self.sweep_us:
            if phase == CAL_PROBE:
                return self._probe_done(counts)
            if phase == CAL_BACK:
                return self._back_done()
            if phase == CAL_FORTH:
                return self._forth_done()
            self.phase = CAL_DONE
            self.field = 0
        return self.field

    def _next(self, phase):
        self.phase = phase
        self._t_us = 0

    def _probe_done(self, counts):
        cpr = 1 << self.bits
        moved = (counts - self.zero_counts + cpr // 2) % cpr - cpr // 2
        expect = cpr // self.pole_pairs  # one electrical turn of the field
        a = moved if moved > 0 else -moved
        if a < expect // 4:
            return self._fail(FAIL_NO_MOTION)
        if a < (expect * 3) // 4 or a > (expect * 5) // 4:
            return self._fail(FAIL_POLE_PAIRS)
        self.sensor_dir = 1 if moved > 0 else -1
        self._next(CAL_BACK)
        return self.field

    def _add(self, counts):
        d = rotor_elec_index(counts, self.bits, self.pole_pairs, self.sensor_dir, 0) - self.field
        if self._n == 0:
            if self.phase == CAL_BACK:
                self._ref = d % _STEPS  # every later offset is taken relative to the first
                self._back_mean = 0
            self._sum = 0
            self._lo = 0x3FFFFFFF
            self._hi = -0x3FFFFFFF
        x = wrap_index(d - self._ref)
        self._sum += x
        if x < self._lo:
            self._lo = x
        if x > self._hi:
            self._hi = x
        self._n += 1

    def _sweep_mean(self):
        """Mean offset of the sweep just finished, or None if the rotor swung too far behind the field."""
        n = self._n
        self._n = 0
        if n == 0 or self._hi - self._lo > _MAX_SWING:
            return None
        return (self._sum + n // 2) // n

    def _back_done(self):
        m = self._sweep_mean()
        if m is None:
            return self._fail(FAIL_NOISY)
        self._back_mean = m
        self._next(CAL_FORTH)
        return self.field

    def _forth_done(self):
        m = self._sweep_mean()
        if m is None:
            return self._fail(FAIL_NOISY)
        # the rotor lags by the same amount each way: the mean of the two sweeps cancels it
        self.elec_zero = (self._ref + (self._back_mean + m) // 2) % _STEPS
        self._next(CAL_RETURN)
        return self.field


DRIVE_OPEN = const(0)
DRIVE_FOC = const(1)
SENSOR_NONE = const(0)
SENSOR_AS5600 = const(1)
SENSOR_AS5048A = const(2)
_SENSOR_BITS = (0, 12, 14)
# FocDrive._packed: per axis _W words, each >= 0 (viper's ptr32 loads are unsigned on 64-bit ports)
_W = const(9)
_P_BITS = const(0)
_P_JOINT_ZERO = const(1)
_P_JOINT_NEG = const(2)  # 1: joint_sign < 0
_P_POLE_PAIRS = const(3)
_P_SENSOR_NEG = const(4)  # 1: sensor_dir < 0
_P_ZERO = const(5)
_P_MOTOR_NEG = const(6)  # 1: motor_dir < 0
_P_COUNTS = const(7)  # the rotor as measure() read it this tick
_P_FF = const(8)  # the torque feed-forward, Q15 of the amplitude, + torque_ff.OFF (TorqueFeedForward writes it)
FF_WORD = _P_FF  # where TorqueFeedForward writes axis i's torque: _packed[FF_WORD + FF_STRIDE * i]
FF_STRIDE = _W


class FocDrive:
    """The closed-loop drive for the axes configured for it (``<axis>_drive = 1``), called by the Gimbal.

    Per tick, for an axis whose sensor is calibrated: ``measure()`` reads
    the rotor, puts the measured joint angle into the axis controller, and
    ``fields()`` turns the controller's effort (the same PID output the
    open-loop drive integrates into a joint angle) into a torque: the field
    90 electrical degrees ahead of the rotor, amplitude effort / effort
    limit of the axis' power. A failed read leaves the axis open-loop for
    that tick (the caller's ``bldc_duties`` on the last joint angle).

    Axes configured for FOC without a stored calibration are calibrated at
    start-up (``start_calibration()``, then ``calibrate()`` every tick until
    it returns True); the results go into the config for the caller to save.
    """

    def __init__(self):
        self.active = [0, 0, 0]  # 1: calibrated and configured: read the rotor every tick
        self.any_active = False
        self.active_mask = 0  # bit i: active[i], for HAL.angle_read_axes
        self.counts = [-1, -1, -1]  # the rotor readings HAL.angle_read_axes gives measure()
        self.closed = 0  # bit i: axis i's rotor was read this tick, drive.write commutates on it
        self.wanted = [0, 0, 0]  # configured for FOC
        self.bits = [0, 0, 0]
        self.sensor_dir = [0, 0, 0]
        self.zero = [0, 0, 0]
        self.joint_zero = [0, 0, 0]  # sensor counts at joint angle 0
        self.joint_sign = [0, 0, 0]  # sensor_dir * motor_dir
        self.pole_pairs = [7, 7, 7]
        self.motor_dir = [1, 1, 1]
        # what measure() and fields() read each tick, packed from the lists above by configure():
        # one ptr32 load a value instead of an attribute and a list subscript (about 40 ns each)
        self._packed = array("i", [0] * (3 * _W))
        for i in range(3):
            self._packed[i * _W + _P_FF] = _FF_OFF  # no torque feed-forward
        self.packed = self._packed  # TorqueFeedForward writes its torques into it (FF_WORD, FF_STRIDE)
        self.read_errors = 0
        self.cal = [None, None, None]  # type: list  # FocCalibrator per axis while calibrating
        self.cal_reason = [0, 0, 0]
        self.calibrating = False

    def configure(self, cfg):
        """Read this drive's keys from a validated Config; axes without a calibration need one."""
        need = False
        for i in range(3):
            a = cfg.axis
            self.wanted[i] = 1 if a(i, "drive") == DRIVE_FOC and a(i, "sensor") != SENSOR_NONE else 0
            self.bits[i] = _SENSOR_BITS[a(i, "sensor")]
            self.sensor_dir[i] = a(i, "sensor_dir")
            self.zero[i] = a(i, "foc_zero")
            self.joint_zero[i] = a(i, "joint_zero_counts")
            self.pole_pairs[i] = a(i, "pole_pairs")
            self.motor_dir[i] = a(i, "motor_dir")
            self.joint_sign[i] = self.sensor_dir[i] * self.motor_dir[i]
            ok = self.sensor_dir[i] != 0 and self.zero[i] >= 0 and self.joint_zero[i] >= 0
            self.active[i] = 1 if self.wanted[i] and ok else 0
            if self.wanted[i] and not ok:
                need = True
            p = self._packed
            k = i * _W
            p[k + _P_BITS] = self.bits[i]
            p[k + _P_JOINT_ZERO] = max(0, self.joint_zero[i])
            p[k + _P_JOINT_NEG] = 1 if self.joint_sign[i] < 0 else 0
            p[k + _P_POLE_PAIRS] = self.pole_pairs[i]
            p[k + _P_SENSOR_NEG] = 1 if self.sensor_dir[i] < 0 else 0
            p[k + _P_ZERO] = max(0, self.zero[i])
            p[k + _P_MOTOR_NEG] = 1 if self.motor_dir[i] < 0 else 0
            p[k + _P_COUNTS] = 0
        self.closed = 0
        self.any_active = any(self.active)
        self.active_mask = self.active[0] | self.active[1] << 1 | self.active[2] << 2
        return need

    def start_calibration(self):
        self.calibrating = True
        for i in range(3):
            if self.wanted[i] and not self.active[i]:
                c = FocCalibrator(self.bits[i], self.pole_pairs[i])
                c.start()
                self.cal[i] = c
            else:
                self.cal[i] = None

    def calibrate(self, hal, dt_us, amp, svpwm, out):
        """One calibration tick: drive each calibrating axis' field; True when every axis is finished."""
        done = True
        for i in range(3):
            c = self.cal[i]
            if c is None:
                continue
            if c.phase < CAL_DONE:
                f = c.step(hal.angle_read(i), dt_us)
                phase_duties(f, amp[i], svpwm, out)
                hal.bldc_write(i, out[0], out[1], out[2])
                if c.phase < CAL_DONE:
                    done = False
        if done:
            self.calibrating = False
        return done

    def store(self, cfg):
        """Write the finished calibrations into ``cfg`` (a Config copy); returns the axes that failed (bits)."""
        failed = 0
        for i in range(3):
            c = self.cal[i]
            if c is None:
                continue
            self.cal_reason[i] = c.reason
            if c.phase == CAL_DONE:
                cfg.set(axis_key(i, "sensor_dir"), c.sensor_dir)
                cfg.set(axis_key(i, "foc_zero"), c.elec_zero)
                # where field 0 held the rotor: the joint zero the open-loop drive assumes too
                cfg.set(axis_key(i, "joint_zero_counts"), c.zero_counts)
            else:
                failed |= 1 << i
            self.cal[i] = None
        return failed

    @micropython.viper
    def measure(self, hal, axes):
        """Read every active axis' rotor: its controller's joint angle becomes the measured one (``closed`` bit i).

        A failed read leaves that axis open-loop for this tick (bit i clear). One call for the three
        axes, and one HAL call (``angle_read_axes``) for their sensors: a method call costs several attribute
        lookups.
        """
        p = ptr32(self._packed)
        mask = int(self.active_mask)
        read = self.counts
        hal.angle_read_axes(mask, read)  # one HAL call for the three rotors
        closed = 0
        to_udeg = counts_to_udeg  # one global lookup, not one a call
        for i in range(3):
            if not (mask >> i) & 1:
                continue
            counts = int(read[i])
            if counts < 0:
                self.read_errors = int(self.read_errors) + 1
                continue
            closed |= 1 << i
            k = i * _W
            p[k + _P_COUNTS] = counts
            bits = p[k + _P_BITS]
            d = (counts - p[k + _P_JOINT_ZERO]) & ((1 << bits) - 1)
            j = int(to_udeg(d, bits))
            if j >= 180000000:
                j -= 360000000
            if p[k + _P_JOINT_NEG]:
                j = 0 - j
            s = ptr32(axes[i].packed)
            s[_S_JOINT] = j + _OFF
            s[_S_FRAC] = _OFF
        self.closed = closed

    @micropython.viper
    def fields(self, axes, fields):
        """Each closed axis' field for ``motor.phase_duties_axes``: its effort as a torque on the rotor ``measure`` read.

        ``fields`` (``MotorDrive.fields``, motor.F_*): axis i's configured
        amplitude is read from it, its field index and signed amplitude
        (effort / effort limit of that amplitude, plus the torque
        feed-forward, clamped to it) written into it. One call for the three
        axes.
        """
        p = ptr32(self._packed)
        f = ptr32(fields)
        closed = int(self.closed)
        for i in range(3):
            if not (closed >> i) & 1:
                continue
            s = ptr32(axes[i].packed)
            n = i * _F_STRIDE
            amp = f[n + _F_POWER] - _F_OFF
            lim = s[_G_EFFORT_LIMIT] >> 10
            if lim < 1:
                lim = 1
            t = (((s[_S_EFFORT] - _OFF) >> 10) * amp) // lim
            k = i * _W
            ff = p[k + _P_FF] - _FF_OFF  # the torque feed-forward (firmware/torque_ff.py)
            if ff:
                t += (ff * amp) >> 15
            if t > amp:
                t = amp
            elif t < 0 - amp:
                t = 0 - amp
            # rotor_elec_index() of the reading measure() kept, written out here: one call less per axis and tick
            # (tests/test_firmware_foc.py checks the two agree)
            bits = p[k + _P_BITS]
            mask = (1 << bits) - 1
            c = p[k + _P_COUNTS]
            if p[k + _P_SENSOR_NEG]:
                c = (0 - c) & mask
            e = ((((c * p[k + _P_POLE_PAIRS]) & mask) * _STEPS) >> bits) - p[k + _P_ZERO]
            if p[k + _P_MOTOR_NEG]:
                t = 0 - t
            # foc_duties' field: a quarter turn ahead of the rotor (phase_duties_axes wraps the index)
            f[n + _F_INDEX] = e + _QUARTER + _F_OFF
            f[n + _F_AMP] = t + _F_OFF
