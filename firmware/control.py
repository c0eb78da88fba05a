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
# AxisController._gains: the integer gains step() reads, each >= 0 (viper's ptr32 loads are unsigned
# on 64-bit ports); one ptr32 load each instead of an attribute load (about 25 ns each)
_G_EFFORT_LIMIT = const(0)
_G_ERR_LIM = const(1)
_G_ANGLE_KP = const(2)
_G_MAX_RATE = const(3)
_G_KD = const(4)
_G_KP = const(5)
_G_FF = const(6)
_G_KI = const(7)
_G_SLEW = const(8)


class AxisController:
    """One axis. Units and formats (every product stays within +-2**30):

    angle gain ``angle_kp_q18`` = mdps per udeg, Q18; ``rate_kp_q10`` and
    ``rate_ff_q10`` Q10; ``rate_ki_u`` = 1/s scaled by 2**30 / 1e6; the
    integral ``i_q4`` in mdps * 16; the commanded joint ``joint_udeg`` plus
    ``joint_frac`` ndeg (0..999) below it, so the joint integrates
    mdps * us = ndeg exactly.
    """

    def __init__(self):
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
        # state
        self.i_q4 = 0  # integral term, mdps * 16
        self.prev_rate_mdps = 0
        self.d_mdps = 0
        self.effort_mdps = 0
        self.joint_udeg = 0
        self.joint_frac = 0  # ndeg, 0..999
        self.at_limit = False
        self.rate_sp_mdps = 0
        self.tick_start_udeg = 0  # the joint command when this tick's step() began
        self.budget_udeg = 0  # how far it may move this tick (joint rate limit x dt)
        self.rotor_udeg = 0  # open loop: where the rotor is, from the IMUs (hold_field)
        self.field_lead_udeg = 0  # open loop: how far the field may run ahead of it; 0 = no guard
        self._gains = array("i", [0] * 9)  # the gains above, packed by configure() for step()
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
        packed = (self.effort_limit_mdps, self.err_lim_udeg, self.angle_kp_q18, self.max_rate_mdps, self.rate_kd_us,
                  self.rate_kp_q10, self.rate_ff_q10, self.rate_ki_u, self.slew_q12)
        for k in range(9):
            if packed[k] < 0:
                raise ValueError("AxisController: gains and limits must be >= 0, got %r" % (packed,))
            self._gains[k] = packed[k]
        lim = self.effort_limit_mdps << 4
        if self.i_q4 > lim:
            self.i_q4 = lim
        elif self.i_q4 < -lim:
            self.i_q4 = -lim

    def reset(self, joint_udeg, rate_mdps):
        """Bumpless start: no stored effort or integral, joint command where the joint is."""
        self.i_q4 = 0
        self.d_mdps = 0
        self.effort_mdps = 0
        self.prev_rate_mdps = rate_mdps
        self.joint_udeg = joint_udeg
        self.joint_frac = 0
        self.at_limit = False
        self.rotor_udeg = joint_udeg

    @micropython.viper
    def step(self, target_udeg: int, ff_mdps: int, angle_udeg: int, rate_mdps: int, dt_us: int):
        # viper: machine-word integers; every value below stays within +-2**30
        # (bench_int31 checks it), so a 32-bit board computes what CPython does
        if dt_us <= 0:
            return
        if dt_us > _DT_MAX:
            dt_us = _DT_MAX
        gains = ptr32(self._gains)
        lim = gains[_G_EFFORT_LIMIT]
        # outer loop: angle error (wrapped to +-180 deg) -> rate setpoint
        e = int(wrap_udeg(target_udeg - angle_udeg))
        x = gains[_G_ERR_LIM]
        if e > x:
            e = x
        elif e < 0 - x:
            e = 0 - x
        g = gains[_G_ANGLE_KP]
        sp = ((e >> 10) * g + (((e & 1023) * g) >> 10)) >> 8  # e * g >> 18, split at 2**10
        x = gains[_G_MAX_RATE]
        if sp > x:
            sp = x
        elif sp < 0 - x:
            sp = 0 - x
        if ff_mdps > _FF_MAX:
            ff_mdps = _FF_MAX
        elif ff_mdps < -_FF_MAX:
            ff_mdps = -_FF_MAX
        sp += ff_mdps
        self.rate_sp_mdps = sp
        err = sp - rate_mdps
        if err > _ERR_MAX:
            err = _ERR_MAX
        elif err < -_ERR_MAX:
            err = -_ERR_MAX
        # derivative on measurement, lightly low-passed (gyro noise): kd / dt as Q8
        x = rate_mdps - int(self.prev_rate_mdps)
        self.prev_rate_mdps = rate_mdps
        kd = gains[_G_KD]
        dm = int(self.d_mdps)
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
            self.d_mdps = dm
        elif dm:
            dm += (0 - dm) >> 2
            self.d_mdps = dm
        # P and feed-forward, each product split at 2**10 (exactly (k * v) >> 10)
        g = gains[_G_KP]
        base = g * (err >> 10) + ((g * (err & 1023)) >> 10) + dm
        g = gains[_G_FF]
        base += g * (ff_mdps >> 10) + ((g * (ff_mdps & 1023)) >> 10)
        # integral: di = err * ki * dt / 1e6 in mdps * 16; k = ki * dt * 2**20 / 1e6
        g = gains[_G_KI]
        k = ((g * (dt_us >> 8)) >> 2) + ((g * (dt_us & 255)) >> 10)
        if k > 4194303:
            k = 4194303
        x = err >> 10
        g = err & 1023
        di = ((x * (k >> 12)) << 6) + ((x * (k & 4095)) >> 6) + ((g * (k >> 6)) >> 10)
        # anti-windup: integrate only if that does not push a saturated output further
        i = int(self.i_q4)
        out = base + ((i + di) >> 4)
        hold = 1
        if di > 0:
            hold = 0
            if out > lim:
                hold = 1
            elif self.at_limit and int(self.joint_udeg) >= int(self.joint_max_udeg):
                hold = 1
        elif di < 0:
            hold = 0
            if out < 0 - lim:
                hold = 1
            elif self.at_limit and int(self.joint_udeg) <= int(self.joint_min_udeg):
                hold = 1
        if not hold:
            i += di
            x = lim << 4
            if i > x:
                i = x
            elif i < 0 - x:
                i = 0 - x
            self.i_q4 = i
        out = base + (i >> 4)
        if out > lim:
            out = lim
        elif out < 0 - lim:
            out = 0 - lim
        # slew limit on the effort: slew_q12 * dt >> 12, dt split at 2**8
        g = gains[_G_SLEW]
        x = (g * (dt_us >> 8) + ((g * (dt_us & 255)) >> 8)) >> 4
        prev = int(self.effort_mdps)
        if out > prev + x:
            out = prev + x
        elif out < prev - x:
            out = prev - x
        # integrate into the joint command (udeg + ndeg remainder), inside the joint limits
        j0 = int(self.joint_udeg)
        # the most the command may move this tick: the joint rate limit times dt (|out| <= lim)
        budget = (lim // 1000) * dt_us + ((lim - (lim // 1000) * 1000) * dt_us) // 1000 + 1
        self.tick_start_udeg = j0
        self.budget_udeg = budget
        x = out // 1000
        f = int(self.joint_frac) + (out - x * 1000) * dt_us
        j = j0 + x * dt_us + f // 1000
        f %= 1000
        # at_limit stays set while the joint rests on a limit, not only on the tick it arrives.
        # A command found outside the limits (motors started there) walks back in at the rate
        # limit instead of snapping: a jump of the field would slip poles.
        at = 0
        x = int(self.joint_max_udeg)
        if j >= x:
            j = x
            if j0 > x and j0 - budget > x:
                j = j0 - budget
            f = 0
            at = 1
            if out > 0:
                out = 0
        else:
            x = int(self.joint_min_udeg)
            if j < x or (j == x and f == 0):
                j = x
                if j0 < x and j0 + budget < x:
                    j = j0 + budget
                f = 0
                at = 1
                if out < 0:
                    out = 0
        if at:
            self.at_limit = True
        else:
            self.at_limit = False
        self.joint_udeg = j
        self.joint_frac = f
        self.effort_mdps = out

    def effort_permille(self):
        e = self.effort_mdps
        lim = self.effort_limit_mdps
        if lim > 1000000:  # keep e * 1000 under 2**30
            return ((e >> 2) * 1000) // (lim >> 2)
        return (e * 1000) // lim

    @micropython.native
    def add_joint_rate(self, rate_mdps, dt_us):
        """Move the commanded joint by a feed-forward joint rate over ``dt_us``, inside the joint limits.

        For motion the feedback loop should not have to see first (the
        handle's, from :class:`HandleFeedForward`); the rate loop's own state
        is left alone.
        """
        if dt_us > _DT_MAX:
            dt_us = _DT_MAX
        if rate_mdps > _FF_MAX:
            rate_mdps = _FF_MAX
        elif rate_mdps < -_FF_MAX:
            rate_mdps = -_FF_MAX
        whole = rate_mdps // 1000  # udeg per us; the ndeg remainder carries in joint_frac
        frac = self.joint_frac + (rate_mdps - whole * 1000) * dt_us
        joint = self.joint_udeg + whole * dt_us + frac // 1000
        # step() and this together move the command by at most the joint rate limit per tick
        lo = self.tick_start_udeg - self.budget_udeg
        hi = self.tick_start_udeg + self.budget_udeg
        if joint > hi:
            joint = hi
        elif joint < lo:
            joint = lo
        if joint >= self.joint_max_udeg and self.joint_udeg <= self.joint_max_udeg:
            self.joint_udeg = self.joint_max_udeg
            self.joint_frac = 0
            self.at_limit = True
        elif joint <= self.joint_min_udeg and self.joint_udeg >= self.joint_min_udeg:
            self.joint_udeg = self.joint_min_udeg
            self.joint_frac = 0
            self.at_limit = True
        elif self.joint_max_udeg < joint or joint < self.joint_min_udeg:
            pass  # still walking back in from outside the limits (step() moves it): no feed-forward push
        else:
            self.joint_udeg = joint
            self.joint_frac = frac % 1000


    @micropython.native
    def hold_field(self, joint_rate_mdps, dt_us):
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
        lim = self.field_lead_udeg
        if lim <= 0:
            return
        if dt_us > _DT_MAX:
            dt_us = _DT_MAX
        if joint_rate_mdps > _FF_MAX:
            joint_rate_mdps = _FF_MAX
        elif joint_rate_mdps < -_FF_MAX:
            joint_rate_mdps = -_FF_MAX
        whole = joint_rate_mdps // 1000
        r = self.rotor_udeg + whole * dt_us + ((joint_rate_mdps - whole * 1000) * dt_us) // 1000
        d = self.joint_udeg - r
        r += ((d >> 10) * (dt_us >> 4)) >> 6  # d * dt / 2**20 s: products stay within +-2**30
        d = self.joint_udeg - r
        if d > lim:
            self.joint_udeg = r + lim
            self.joint_frac = 0
        elif d < -lim:
            self.joint_udeg = r - lim
            self.joint_frac = 0
        self.rotor_udeg = r


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
