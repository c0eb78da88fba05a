"""Motor maths: BLDC phase duties (sinusoidal or SVPWM) for a field angle, and hobby-servo pulses.

A gimbal BLDC motor is driven like a stepper with a very fine step: the
three phase voltages set a magnetic field at electrical angle ``theta_e``
and the rotor settles at ``theta_e / pole_pairs``. The controller moves the
joint by moving that field (STorM32, BruGi and EvvGC do the same); the
amplitude is the power limit (``power_permille`` of half the supply).

    out = [0, 0, 0]
    bldc_duties(joint_udeg, pole_pairs=7, motor_dir=1, amp_permille=300, svpwm=False, out=out)
    hal.bldc_write(axis, out[0], out[1], out[2])
    hal.servo_write(axis, servo_pulse_us(joint_udeg, 1, us_per_deg_q8))

Phase A ~ sin(theta_e), B ~ sin(theta_e - 120 deg), C ~ sin(theta_e + 120 deg).
SVPWM adds the same offset to all three (min-max injection), which leaves the
field untouched but lets the amplitude reach 2/sqrt(3) of sinusoidal.
"""

import math
from array import array

try:
    import micropython
except ImportError:  # CPython
    from .mpcompat import micropython, ptr16, ptr32  # type: ignore[assignment,no-redef]

from .fixmath import SIN_Q15

try:
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const  # type: ignore[assignment,no-redef]

_UDEG_PER_STEP = const(234375)  # 360 deg / fixmath.SIN_STEPS
_STEPS = const(1536)  # fixmath.SIN_STEPS: imported names are not constants to viper
_THIRD = const(512)  # fixmath.SIN_THIRD, 120 deg

DUTY_MID = const(32768)
DUTY_MAX = const(65535)
SERVO_CENTRE_US = 1500
SERVO_MIN_US = 500
SERVO_MAX_US = 2500
# the sine table offset to unsigned 16 bits, for phase_duties' viper ptr16 loads (about 25 ns a lookup
# cheaper than a list subscript; ptr16 loads are unsigned on every port, hence the offset)
_SIN_U16 = array("H", [v + 32768 for v in SIN_Q15])


def bldc_amplitude(power_permille, svpwm):
    """Sine amplitude in duty counts for a power limit; SVPWM may reach 2/sqrt(3) further."""
    full = 37836 if svpwm else 32767  # 32767 * 2 / sqrt(3) for SVPWM
    return (full * power_permille) // 1000


# phase_duties_axes' input: per axis F_STRIDE words of an array('i'), each + F_OFF (viper's ptr32 loads are
# unsigned on 64-bit ports): the field's table index and its signed amplitude (duty counts), and the axis'
# configured amplitude (the power limit) for whoever computes the signed one (FocDrive.fields)
F_INDEX = const(0)
F_AMP = const(1)
F_POWER = const(2)
F_STRIDE = const(3)
F_OFF = const(0x20000000)
_ONE_FIELD = array("i", [F_OFF] * F_STRIDE)  # phase_duties' single axis, through phase_duties_axes
_ONE_OUT = array("H", [0, 0, 0])


@micropython.viper
def field_index(joint_udeg: int, pole_pairs: int, motor_dir: int) -> int:
    """The open-loop field's table index (0..1535) for a joint angle: the field sits where the rotor should.

    Viper (machine integers): |joint| <= 2**28, pole_pairs <= 64 keep every
    value within +-2**30.
    """
    # table index = floor(joint * pole_pairs / 234375) mod 1536 (360 deg = 1536 * 234375 udeg),
    # with the joint split at 234375 udeg so no product leaves +-2**30
    j = joint_udeg * motor_dir
    q = j // _UDEG_PER_STEP
    return (q * pole_pairs + ((j - q * _UDEG_PER_STEP) * pole_pairs) // _UDEG_PER_STEP) % _STEPS


@micropython.viper
def bldc_duties(joint_udeg: int, pole_pairs: int, motor_dir: int, amp: int, svpwm: int, out):
    """Write three duty_u16 values for a joint angle into ``out`` (no allocation)."""
    phase_duties(field_index(joint_udeg, pole_pairs, motor_dir), amp, svpwm, out)


@micropython.viper
def phase_duties(index: int, amp: int, svpwm: int, out):
    """Three duty_u16 values for the field at electrical angle ``index`` (1536 per turn) into ``out``.

    ``amp`` is the sine amplitude in duty counts (|amp| <= 37836, see
    bldc_amplitude); a negative amplitude is the field turned half a turn.
    One axis through :func:`phase_duties_axes` (the tick's drive writes all
    its axes with one call of that).
    """
    f = ptr32(_ONE_FIELD)
    f[F_INDEX] = index % _STEPS + F_OFF
    f[F_AMP] = amp + F_OFF
    phase_duties_axes(1, _ONE_FIELD, svpwm, _ONE_OUT)
    o = ptr16(_ONE_OUT)
    out[0] = o[0]
    out[1] = o[1]
    out[2] = o[2]


@micropython.viper
def phase_duties_axes(mask: int, fields, svpwm: int, out):
    """For each axis i in ``mask`` (bit i), its field's three duty_u16 values into ``out[3i:3i + 3]``.

    ``fields``: array('i'), axis i's index and signed amplitude at
    ``F_STRIDE * i + F_INDEX`` / ``F_AMP`` (+ F_OFF); ``out``: array('H')
    of nine. One call for the three axes: a call costs more than the maths.
    Products stay within +-2**30 (amp * 28378 at most, for SVPWM).
    """
    f = ptr32(fields)
    o = ptr16(out)
    tab = ptr16(_SIN_U16)
    for ax in range(3):
        if not (mask >> ax) & 1:
            continue
        k = ax * F_STRIDE
        i = (f[k + F_INDEX] - F_OFF) % _STEPS
        amp = f[k + F_AMP] - F_OFF
        va = int(tab[i]) - 32768
        vb = int(tab[(i - _THIRD) % _STEPS]) - 32768
        vc = int(tab[(i + _THIRD) % _STEPS]) - 32768
        off = 0
        if svpwm:
            hi = va
            lo = va
            if vb > hi:
                hi = vb
            if vb < lo:
                lo = vb
            if vc > hi:
                hi = vc
            if vc < lo:
                lo = vc
            off = (0 - (hi + lo)) >> 1
        a = DUTY_MID + ((amp * (va + off)) >> 15)
        b = DUTY_MID + ((amp * (vb + off)) >> 15)
        c = DUTY_MID + ((amp * (vc + off)) >> 15)
        k = ax * 3
        o[k] = DUTY_MAX if a > DUTY_MAX else (0 if a < 0 else a)
        o[k + 1] = DUTY_MAX if b > DUTY_MAX else (0 if b < 0 else b)
        o[k + 2] = DUTY_MAX if c > DUTY_MAX else (0 if c < 0 else c)


@micropython.native
def servo_pulse_us(joint_udeg, motor_dir, us_per_deg_q8):
    """Servo pulse width for a joint angle; 1500 us at 0, clamped to 500..2500 us."""
    m = (joint_udeg * motor_dir) // 1000  # mdeg; us_per_deg_q8 <= 12800
    if -83886 <= m <= 83886:
        p = SERVO_CENTRE_US + (m * us_per_deg_q8) // 256000
    else:  # beyond 83 deg: 16 mdeg steps keep the product under 2**30
        p = SERVO_CENTRE_US + ((m >> 4) * us_per_deg_q8) // 16000
    if p < SERVO_MIN_US:
        return SERVO_MIN_US
    if p > SERVO_MAX_US:
        return SERVO_MAX_US
    return p


def _clarke(duty_a, duty_b, duty_c):
    # the common (SVPWM) offset cancels: for A ~ sin(t), B ~ sin(t - 120),
    # C ~ sin(t + 120) this is (1.5 sin t, 1.5 cos t)
    a = duty_a - DUTY_MID
    b = duty_b - DUTY_MID
    c = duty_c - DUTY_MID
    return a - (b + c) / 2.0, (c - b) * (math.sqrt(3.0) / 2.0)


def field_angle_rad(duty_a, duty_b, duty_c):
    """The electrical field angle (rad, -pi..pi) of three duties: for plant models, not the loop."""
    alpha, beta = _clarke(duty_a, duty_b, duty_c)
    return math.atan2(alpha, beta)


def field_amplitude(duty_a, duty_b, duty_c):
    """Field amplitude as a fraction of the full sinusoidal swing (0..~1.15)."""
    alpha, beta = _clarke(duty_a, duty_b, duty_c)
    return math.sqrt(alpha * alpha + beta * beta) / (1.5 * 32767.0)
