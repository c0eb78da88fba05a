"""Per-axis cascaded controller: angle -> rate -> joint-rate effort -> joint angle.

The camera angle error sets a rate setpoint (P, limited), the host's rate
setpoint is added to it and fed forward, and a PID on the camera rate gives
the effort: how fast the joint should turn, in mdps. As in STorM32, BruGi and
EvvGC, the motors run open loop: the effort is integrated into a commanded
joint angle that the BLDC field (or the servo pulse) follows, so the joint
limits clamp that integral.

Features: anti-windup (the integrator stops when the output or the joint is
saturated in the direction it would push, and is clamped to the output
limit); derivative on measurement (a setpoint step gives no kick); output and
slew limits; feed-forward of the host's rate; joint limits; ``reset()`` for
bumpless starts. Integer maths only; time comes in as ``dt_us``.

    c = AxisController()
    c.configure(angle_kp=8.0, rate_kp=0.6, rate_ki=5.0, rate_kd_ms=0.0, rate_ff=1.0,
                max_rate_dps=200, effort_limit_dps=400, slew_dps2=20000,
                joint_min_deg=-90, joint_max_deg=90)
    c.step(target_udeg, ff_mdps, angle_udeg, rate_mdps, dt_us)
    c.joint_udeg, c.effort_mdps, c.at_limit
"""

from array import array

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython, ptr32  # type: ignore[assignment,no-redef]

from .fixmath import SIN_Q15, SIN_STEPS, wrap_udeg
from .imu import CAL_DONE, CAL_MOVED, gyro_mdps, gyro_mean_mdps, to_body

_ERR_MAX = const(2097151)  # rate error clamp, mdps (2**21: 2097 deg/s, beyond any gyro)
_DT_MAX = const(40000)  # us: longer steps are integrated as 40 ms
_FF_MAX = const(1048575)  # feed-forward clamp, mdps
# AxisController.packed: what step() reads and writes each tick, one word each in an array('i') that viper
# reads through ptr32 (one hash lookup of an attribute costs 20-60 ns on the unix port, a ptr32 load ~1 ns;
# docs/firmware.md, "Timing and allocation"). The gains are >= 0; every other word is stored + OFF
# (viper's ptr32 loads are unsigned on 64-bit ports; each of those values is within +-2**29).
_G_EFFORT_LIMIT = const(0)
_G_ERR_LIM = const(1)
_G_ANGLE_KP = const(2)
_G_MAX_RATE = const(3)
_G_KD = const(4)
_G_KP = const(5)
_G_FF = const(6)
_G_KI = const(7)
_G_SLEW = const(8)
_W_JOINT_MIN = const(9)  # udeg (+ OFF from here on)
_W_JOINT_MAX = const(10)
S_JOINT = const(11)  # the commanded joint, udeg (FocDrive.measure writes the measured one)
S_FRAC = const(12)  # ndeg below it, 0..999
S_EFFORT = const(13)  # mdps
_S_I = const(14)  # the integral term, mdps * 16
_S_PREV_RATE = const(15)
_S_D = const(16)
_S_AT_LIMIT = const(17)
_S_RATE_SP = const(18)
_S_TICK_START = const(19)  # the joint command when this tick's step() began
_S_BUDGET = const(20)  # how far it may move this tick (joint rate limit x dt)
_S_ROTOR = const(21)  # open loop: where the rotor is, from the IMUs (hold_field)
_WORDS = const(22)
OFF = const(0x20000000)  # 2**29


def _word(k):
    """A property for word ``k`` of ``packed`` (+ OFF), so code off the hot path reads and writes it by name."""

    def get(self):
        return self.packed[k] - OFF

    def put(self, value):
        self.packed[k] = value + OFF

    return property(get, put)


class AxisController:
    """One axis. Units and formats (every product stays within +-2**30):

    angle gain ``angle_kp_q18`` = mdps per udeg, Q18; ``rate_kp_q10`` and
    ``rate_ff_q10`` Q10; ``rate_ki_u`` = 1/s scaled by 2**30 / 1e6; the
    integral ``i_q4`` in mdps * 16; the commanded joint ``joint_udeg`` plus
    ``joint_frac`` ndeg (0..999) below it, so the joint integrates
    mdps * us = ndeg exactly.

    The state lives in ``packed`` (see the word indices above); ``joint_udeg``,
    ``effort_mdps`` and the others are properties over it. Viper code on the
    tick's path reads the words themselves (``ptr32(c.packed)[S_JOINT] - OFF``).
    """

    joint_udeg = _word(S_JOINT)
    joint_frac = _word(S_FRAC)
    effort_mdps = _word(S_EFFORT)
    i_q4 = _word(_S_I)
    rate_sp_mdps = _word(_S_RATE_SP)
    rotor_udeg = _word(_S_ROTOR)

    @property
    def at_limit(self):
        return self.packed[_S_AT_LIMIT] != OFF

    def __init__(self):
        self.packed = array("i", [OFF] * _WORDS)  # every state word 0
        self.angle_kp_q18 = 0
        self.err_lim_udeg = 0
        self.rate_kp_q10 = 0
        self.rate_ki_u = 0
        self.rate_kd_us = 0
        self.rate_ff_q10 = 0
        self.max_rate_mdps = 0
        self.effort_limit_mdps = 1
        self.slew_q12 = 0
        self.joint_min_udeg = 0
        self.joint_max_udeg = 0
        self.field_lead_udeg = 0  # open loop: how far the field may run ahead of the rotor; 0 = no guard
        self.configure(8.0, 0.6, 5.0, 0.0, 1.0, 200.0, 400.0, 20000.0, -170.0, 170.0)

    def configure(self, angle_kp, rate_kp, rate_ki, rate_kd_ms, rate_ff, max_rate_dps,
                  effort_limit_dps, slew_dps2, joint_min_deg, joint_max_deg):
        """Set gains and limits from config units (floats, once; the tick uses the ints)."""
        self.angle_kp_q18 = int(angle_kp * 262.144)  # 1/s -> mdps per udeg, Q18
        self.max_rate_mdps = int(max_rate_dps * 1000)
        # beyond this angle error the rate setpoint is saturated anyway: clamp it there first
        lim = 180000000
        if self.angle_kp_q18 > 0:
            lim = min(lim, (self.max_rate_mdps << 18) // self.angle_kp_q18 + 2048)
        self.err_lim_udeg = lim
        self.rate_kp_q10 = int(rate_kp * 1024)
        self.rate_ki_u = int(rate_ki * 1073.741824)  # 2**30 / 1e6 per (1/s)
        self.rate_kd_us = int(rate_kd_ms * 1000)
        self.rate_ff_q10 = int(rate_ff * 1024)
        self.effort_limit_mdps = max(1, int(effort_limit_dps * 1000))
        self.slew_q12 = int(slew_dps2 * 4.096)  # mdps per us, Q12 (mdps/s * 4096 / 1e6)
        self.joint_min_udeg = int(joint_min_deg * 1e6)
        self.joint_max_udeg = int(joint_max_deg * 1e6)
        gains = (self.effort_limit_mdps, self.err_lim_udeg, self.angle_kp_q18, self.max_rate_mdps, self.rate_kd_us,
                 self.rate_kp_q10, self.rate_ff_q10, self.rate_ki_u, self.slew_q12)
        p = self.packed
        for k in range(9):
            if gains[k] < 0:
                raise ValueError("AxisController: gains and limits must be >= 0, got %r" % (gains,))
            p[k] = gains[k]
        p[_W_JOINT_MIN] = self.joint_min_udeg + OFF
        p[_W_JOINT_MAX] = self.joint_max_udeg + OFF
        lim = self.effort_limit_mdps << 4
        if self.i_q4 > lim:
            self.i_q4 = lim
        elif self.i_q4 < -lim:
            self.i_q4 = -lim

    def reset(self, joint_udeg, rate_mdps):
        """Bumpless start: no stored effort or integral, joint command where the joint is."""
        p = self.packed
        for k in (_S_I, _S_D, S_EFFORT, S_FRAC, _S_AT_LIMIT):
            p[k] = OFF
        p[_S_PREV_RATE] = rate_mdps + OFF
        p[S_JOINT] = joint_udeg + OFF
        p[_S_ROTOR] = joint_udeg + OFF

    def step(self, target_udeg, ff_mdps, angle_udeg, rate_mdps, dt_us):
        """One tick of the cascade; returns 1 while the joint rests on a limit (``at_limit``), else 0.

        :func:`step_axes` on this axis alone (the tick steps its axes with one call of that).
        """
        axes, target, ff, ang, rate = _STEP_ONE
        axes[0] = self
        target[0] = target_udeg
        ff[0] = ff_mdps
        ang[0] = angle_udeg
        rate[0] = rate_mdps
        at = step_axes(axes, 1, target, ff, ang, rate, dt_us)
        axes[0] = None
        return at

    def effort_permille(self):
        e = self.packed[S_EFFORT] - OFF
        lim = self.effort_limit_mdps
        if lim > 1000000:  # keep e * 1000 under 2**30
            return ((e >> 2) * 1000) // (lim >> 2)
        return (e * 1000) // lim

    @micropython.viper
    def add_joint_rate(self, rate_mdps: int, dt_us: int) -> int:
        """Move the commanded joint by a feed-forward joint rate over ``dt_us``, inside the joint limits.

        For motion the feedback loop should not have to see first (the
        handle's, from :class:`HandleFeedForward`); the rate loop's own state
        is left alone. Returns ``at_limit`` (1 or 0), as ``step`` does.
        """
        p = ptr32(self.packed)
        if dt_us > _DT_MAX:
            dt_us = _DT_MAX
        if rate_mdps > _FF_MAX:
            rate_mdps = _FF_MAX
        elif rate_mdps < -_FF_MAX:
            rate_mdps = -_FF_MAX
        whole = rate_mdps // 1000  # udeg per us; the ndeg remainder carries in joint_frac
        frac = (p[S_FRAC] - OFF) + (rate_mdps - whole * 1000) * dt_us
        j0 = p[S_JOINT] - OFF
        joint = j0 + whole * dt_us + frac // 1000
        # step() and this together move the command by at most the joint rate limit per tick
        start = p[_S_TICK_START] - OFF
        budget = p[_S_BUDGET] - OFF
        if joint > start + budget:
            joint = start + budget
        elif joint < start - budget:
            joint = start - budget
        jmax = p[_W_JOINT_MAX] - OFF
        jmin = p[_W_JOINT_MIN] - OFF
        if joint >= jmax and j0 <= jmax:
            p[S_JOINT] = jmax + OFF
            p[S_FRAC] = OFF
            p[_S_AT_LIMIT] = 1 + OFF
        elif joint <= jmin and j0 >= jmin:
            p[S_JOINT] = jmin + OFF
            p[S_FRAC] = OFF
            p[_S_AT_LIMIT] = 1 + OFF
        elif jmax < joint or joint < jmin:
            pass  # still walking back in from outside the limits (step() moves it): no feed-forward push
        else:
            p[S_JOINT] = joint + OFF
            p[S_FRAC] = frac % 1000 + OFF
        return p[_S_AT_LIMIT] - OFF

    @micropython.viper
    def hold_field(self, joint_rate_mdps: int, dt_us: int):
        """Open loop: keep the commanded field within ``field_lead_udeg`` of the rotor, so it cannot slip a pole.

        A field that runs more than a quarter electrical turn ahead of its
        rotor stops pulling it: the rotor falls back a pole pitch while the
        controller, seeing the camera swing, drives the field further away
        (on running's jolts the saturated rate loop whipped the yaw field
        round at its rate limit and the camera walked off to the joint
        limit). The rotor's angle is estimated from the joint rate the IMUs
        measure (camera rate plus the handle's, ``joint_rate_mdps``) and
        leans towards the command with a 1 s time constant (a rotor that
        follows its field sits on it; gyro bias must not walk the estimate);
        the command is clamped to it +- the lead.
        """
        lim = int(self.field_lead_udeg)
        if lim <= 0:
            return
        p = ptr32(self.packed)
        if dt_us > _DT_MAX:
            dt_us = _DT_MAX
        if joint_rate_mdps > _FF_MAX:
            joint_rate_mdps = _FF_MAX
        elif joint_rate_mdps < -_FF_MAX:
            joint_rate_mdps = -_FF_MAX
        whole = joint_rate_mdps // 1000
        r = (p[_S_ROTOR] - OFF) + whole * dt_us + ((joint_rate_mdps - whole * 1000) * dt_us) // 1000
        j = p[S_JOINT] - OFF
        d = j - r
        r += ((d >> 10) * (dt_us >> 4)) >> 6  # d * dt / 2**20 s: products stay within +-2**30
        d = j - r
        if d > lim:
            p[S_JOINT] = r + lim + OFF
            p[S_FRAC] = OFF
        elif d < 0 - lim:
            p[S_JOINT] = r - lim + OFF
            p[S_FRAC] = OFF
        p[_S_ROTOR] = r + OFF


# step(): one axis through step_axes, in these one-item lists (axes, target, ff, ang, rate)
_STEP_ONE = ([None], [0], [0], [0], [0])  # type: tuple


@micropython.viper
def step_axes(axes, mask: int, target, ff, ang, rate, dt_us: int) -> int:
    """One tick of the cascade on each axis i in ``mask`` (bit i): ``axes[i]`` (AxisController) from its
    target (udeg), the host's rate feed-forward (mdps), the camera's angle (udeg) and rate (mdps), each a
    list indexed by axis. Returns the axes whose joints rest on a limit (``at_limit``), bit i each.

    One call for the three axes (a call and a method lookup cost more than half of an axis' maths).
    Viper: machine-word integers; every value below stays within +-2**30 (bench_int31 checks it), so a
    32-bit board computes what CPython does.
    """
    limits = 0
    wrap = wrap_udeg  # one global lookup, not one an axis
    if dt_us > _DT_MAX:
        dt_us = _DT_MAX
    for ax in range(3):
        if not (mask >> ax) & 1:
            continue
        p = ptr32(axes[ax].packed)
        if dt_us <= 0:
            if p[_S_AT_LIMIT] - OFF:
                limits |= 1 << ax
            continue
        lim = p[_G_EFFORT_LIMIT]
        # outer loop: angle error (wrapped to +-180 deg) -> rate setpoint
        e = int(wrap(int(target[ax]) - int(ang[ax])))
        x = p[_G_ERR_LIM]
        if e > x:
            e = x
        elif e < 0 - x:
            e = 0 - x
        g = p[_G_ANGLE_KP]
        sp = ((e >> 10) * g + (((e & 1023) * g) >> 10)) >> 8  # e * g >> 18, split at 2**10
        x = p[_G_MAX_RATE]
        if sp > x:
            sp = x
        elif sp < 0 - x:
            sp = 0 - x
        ff_mdps = int(ff[ax])
        if ff_mdps > _FF_MAX:
            ff_mdps = _FF_MAX
        elif ff_mdps < -_FF_MAX:
            ff_mdps = -_FF_MAX
        sp += ff_mdps
        p[_S_RATE_SP] = sp + OFF
        rate_mdps = int(rate[ax])
        err = sp - rate_mdps
        if err > _ERR_MAX:
            err = _ERR_MAX
        elif err < -_ERR_MAX:
            err = -_ERR_MAX
        # derivative on measurement, lightly low-passed (gyro noise): kd / dt as Q8
        x = rate_mdps - (p[_S_PREV_RATE] - OFF)
        p[_S_PREV_RATE] = rate_mdps + OFF
        kd = p[_G_KD]
        dm = p[_S_D] - OFF
        if kd:
            kd = (kd << 8) // dt_us
            if kd > 32767:
                kd = 32767
            if x > 4194303:
                x = 4194303
            elif x < -4194303:
                x = -4194303
            x = 0 - (kd * (x >> 8) + ((kd * (x & 255)) >> 8))
            if x > 134217727:
                x = 134217727
            elif x < -134217727:
                x = -134217727
            dm += (x - dm) >> 2
            p[_S_D] = dm + OFF
        elif dm:
            dm += (0 - dm) >> 2
            p[_S_D] = dm + OFF
        # P and feed-forward, each product split at 2**10 (exactly (k * v) >> 10)
        g = p[_G_KP]
        base = g * (err >> 10) + ((g * (err & 1023)) >> 10) + dm
        g = p[_G_FF]
        base += g * (ff_mdps >> 10) + ((g * (ff_mdps & 1023)) >> 10)
        # integral: di = err * ki * dt / 1e6 in mdps * 16; k = ki * dt * 2**20 / 1e6
        g = p[_G_KI]
        k = ((g * (dt_us >> 8)) >> 2) + ((g * (dt_us & 255)) >> 10)
        if k > 4194303:
            k = 4194303
        x = err >> 10
        g = err & 1023
        di = ((x * (k >> 12)) << 6) + ((x * (k & 4095)) >> 6) + ((g * (k >> 6)) >> 10)
        # anti-windup: integrate only if that does not push a saturated output further
        i = p[_S_I] - OFF
        j0 = p[S_JOINT] - OFF
        jmax = p[_W_JOINT_MAX] - OFF
        jmin = p[_W_JOINT_MIN] - OFF
        was_at = p[_S_AT_LIMIT] - OFF
        out = base + ((i + di) >> 4)
        hold = 1
        if di > 0:
            hold = 0
            if out > lim:
                hold = 1
            elif was_at and j0 >= jmax:
                hold = 1
        elif di < 0:
            hold = 0
            if out < 0 - lim:
                hold = 1
            elif was_at and j0 <= jmin:
                hold = 1
        if not hold:
            i += di
            x = lim << 4
            if i > x:
                i = x
            elif i < 0 - x:
                i = 0 - x
            p[_S_I] = i + OFF
        out = base + (i >> 4)
        if out > lim:
            out = lim
        elif out < 0 - lim:
            out = 0 - lim
        # slew limit on the effort: slew_q12 * dt >> 12, dt split at 2**8
        g = p[_G_SLEW]
        x = (g * (dt_us >> 8) + ((g * (dt_us & 255)) >> 8)) >> 4
        prev = p[S_EFFORT] - OFF
        if out > prev + x:
            out = prev + x
        elif out < prev - x:
            out = prev - x
        # integrate into the joint command (udeg + ndeg remainder), inside the joint limits
        # the most the command may move this tick: the joint rate limit times dt (|out| <= lim)
        budget = (lim // 1000) * dt_us + ((lim - (lim // 1000) * 1000) * dt_us) // 1000 + 1
        p[_S_TICK_START] = j0 + OFF
        p[_S_BUDGET] = budget + OFF
        x = out // 1000
        f = (p[S_FRAC] - OFF) + (out - x * 1000) * dt_us
        j = j0 + x * dt_us + f // 1000
        f %= 1000
        # at_limit stays set while the joint rests on a limit, not only on the tick it arrives.
        # A command found outside the limits (motors started there) walks back in at the rate
        # limit instead of snapping: a jump of the field would slip poles.
        at = 0
        if j >= jmax:
            j = jmax
            if j0 > jmax and j0 - budget > jmax:
                j = j0 - budget
            f = 0
            at = 1
            if out > 0:
                out = 0
        elif j < jmin or (j == jmin and f == 0):
            j = jmin
            if j0 < jmin and j0 + budget < jmin:
                j = j0 + budget
            f = 0
            at = 1
            if out < 0:
                out = 0
        p[_S_AT_LIMIT] = at + OFF
        p[S_JOINT] = j + OFF
        p[S_FRAC] = f + OFF
        p[S_EFFORT] = out + OFF
        if at:
            limits |= 1 << ax
    return limits


# sin table steps (fixmath.SIN_Q15, 1536 per turn) per udeg of joint angle, and a quarter turn
_UDEG_PER_SIN_STEP = const(234375)
_SIN_QUARTER = const(384)
_COS_MIN_Q10 = const(256)  # |roll joint| beyond ~75 deg: the pitch mapping is clamped there


class HandleFeedForward:
    """Joint rates that cancel the handle's own rotation, from a second IMU on the handle.

    STorM32 does the same with its "IMU2": the open-loop motors hold the
    camera through a soft magnetic spring, so the camera IMU only sees a
    handle movement after the spring has passed part of it on. Measuring the
    handle's rate directly and turning the joints against it at once leaves
    the feedback loop only the residue. The handle rate (gyro, body
    forward-right-down, bias from the boot calibration) is mapped into the
    joint axes of the yaw -> roll -> pitch chain at the current joint
    angles; with (p, q, r) the handle rate turned into the yaw arm's frame::

        roll_rate = -p',  pitch_rate = -q' / cos(roll),  yaw_rate = -r + q' tan(roll)

    and scaled by ``handle_ff`` (1.0 = full cancellation). Integers only,
    every product within +-2**30 (trig in Q10 from the motor sine table).

        hff = HandleFeedForward()
        hff.configure(1.0)
        hff.calib_add(raw, ok, status, n_samples)   # each calibration tick
        rates = hff.update(raw, yaw_joint_udeg, roll_joint_udeg)   # [yaw, pitch, roll] mdps
    """

    def __init__(self):
        self.scale_q10 = 1024
        self.bias_mdps = [0, 0, 0]  # handle p, q, r (FRD)
        self.ready = False  # a bias was calibrated: the handle IMU is fitted and working
        self.rate_mdps = [0, 0, 0]  # joint-rate feed-forward: yaw, pitch, roll
        self.cancel_mdps = [0, 0, 0]  # the joint rates that cancel the handle's rotation (unscaled)
        self._sum = [0, 0, 0]
        self._n = 0
        self.body = [0, 0, 0, 0, 0, 0]  # the handle sample in forward-right-down (chip mounted as imu mount 0); accel 0:3
        self._pqr = [0, 0, 0]  # its body rates, mdps

    def configure(self, scale):
        self.scale_q10 = int(scale * 1024)

    def calib_add(self, raw, ok, status, n_samples):
        """Follow the camera IMU's boot calibration (its ``status`` this tick) with the handle gyro."""
        s = self._sum
        if not ok or status == CAL_MOVED:  # or no handle IMU this tick: start again
            self._n = 0
            s[0] = s[1] = s[2] = 0
            return
        body = self.body
        to_body(raw, body, 0, 0, 0, 0, 4096)
        s[0] += body[3]
        s[1] += body[4]
        s[2] += body[5]
        self._n += 1
        if status == CAL_DONE:  # bias from the same samples as the camera's calibration
            n = self._n
            if n == n_samples:
                for i in range(3):
                    self.bias_mdps[i] = gyro_mean_mdps(s[i], n)
                self.ready = True
            self._n = 0
            s[0] = s[1] = s[2] = 0

    @micropython.native
    def update(self, raw, yaw_udeg, roll_udeg):
        """Joint-rate feed-forward (mdps, yaw/pitch/roll) for the handle sample in ``raw``."""
        body = self.body
        to_body(raw, body, 0, 0, 0, 0, 4096)
        pqr = self._pqr
        gyro_mdps(body, self.bias_mdps, pqr)
        p = pqr[0]
        q = pqr[1]
        r = pqr[2]
        i = (yaw_udeg // _UDEG_PER_SIN_STEP) % SIN_STEPS
        sy = SIN_Q15[i] >> 5
        cy = SIN_Q15[(i + _SIN_QUARTER) % SIN_STEPS] >> 5
        i = (roll_udeg // _UDEG_PER_SIN_STEP) % SIN_STEPS
        sr = SIN_Q15[i] >> 5
        cr = SIN_Q15[(i + _SIN_QUARTER) % SIN_STEPS] >> 5
        if cr < _COS_MIN_Q10:
            cr = _COS_MIN_Q10
        # the handle rate in the yaw arm's frame (Q10 trig, each product < 2**30)
        px = ((cy * p) >> 10) + ((sy * q) >> 10)
        qy = ((cy * q) >> 10) - ((sy * p) >> 10)
        g = self.scale_q10
        out = self.rate_mdps
        cancel = self.cancel_mdps
        cancel[0] = -r + (qy * sr) // cr
        cancel[1] = -(qy << 10) // cr
        cancel[2] = -px
        for k in range(3):
            x = cancel[k]
            if x > _FF_MAX:
                x = _FF_MAX
            elif x < -_FF_MAX:
                x = -_FF_MAX
            cancel[k] = x
            out[k] = g * (x >> 10) + ((g * (x & 1023)) >> 10)
        return out
