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
    c.joint_udeg(), c.effort_mdps, c.at_limit
"""

try:
    import micropython
except ImportError:  # CPython
    from firmware.mpcompat import micropython  # type: ignore[assignment,no-redef]


class AxisController:
    def __init__(self):
        self.angle_kp_q10 = 0
        self.rate_kp_q10 = 0
        self.rate_ki_q10 = 0
        self.rate_kd_us = 0
        self.rate_ff_q10 = 0
        self.max_rate_mdps = 0
        self.effort_limit_mdps = 1
        self.slew_mdps_per_s = 0
        self.joint_min_ndeg = 0
        self.joint_max_ndeg = 0
        # state
        self.i_acc = 0  # integral term, mdps * 1e6
        self.prev_rate_mdps = 0
        self.d_mdps = 0
        self.effort_mdps = 0
        self.joint_ndeg = 0
        self.at_limit = False
        self.rate_sp_mdps = 0
        self.configure(8.0, 0.6, 5.0, 0.0, 1.0, 200.0, 400.0, 20000.0, -170.0, 170.0)

    def configure(self, angle_kp, rate_kp, rate_ki, rate_kd_ms, rate_ff, max_rate_dps,
                  effort_limit_dps, slew_dps2, joint_min_deg, joint_max_deg):
        """Set gains and limits from config units (floats, once; the tick uses the ints)."""
        self.angle_kp_q10 = int(angle_kp * 1024)
        self.rate_kp_q10 = int(rate_kp * 1024)
        self.rate_ki_q10 = int(rate_ki * 1024)
        self.rate_kd_us = int(rate_kd_ms * 1000)
        self.rate_ff_q10 = int(rate_ff * 1024)
        self.max_rate_mdps = int(max_rate_dps * 1000)
        self.effort_limit_mdps = max(1, int(effort_limit_dps * 1000))
        self.slew_mdps_per_s = int(slew_dps2 * 1000)
        self.joint_min_ndeg = int(joint_min_deg * 1e6) * 1000
        self.joint_max_ndeg = int(joint_max_deg * 1e6) * 1000
        lim = self.effort_limit_mdps * 1000000
        if self.i_acc > lim:
            self.i_acc = lim
        elif self.i_acc < -lim:
            self.i_acc = -lim

    def reset(self, joint_udeg, rate_mdps):
        """Bumpless start: no stored effort or integral, joint command where the joint is."""
        self.i_acc = 0
        self.d_mdps = 0
        self.effort_mdps = 0
        self.prev_rate_mdps = rate_mdps
        self.joint_ndeg = joint_udeg * 1000
        self.at_limit = False

    def joint_udeg(self):
        return self.joint_ndeg // 1000

    @micropython.native
    def step(self, target_udeg, ff_mdps, angle_udeg, rate_mdps, dt_us):
        if dt_us <= 0:
            return
        lim = self.effort_limit_mdps
        # outer loop: angle error -> rate setpoint
        # angle error wrapped to +-180 deg (fixmath.wrap_udeg, inlined: a call costs more than the sum)
        sp = (self.angle_kp_q10 * ((target_udeg - angle_udeg + 180000000) % 360000000 - 180000000)) // 1024000
        mr = self.max_rate_mdps
        if sp > mr:
            sp = mr
        elif sp < -mr:
            sp = -mr
        sp += ff_mdps
        self.rate_sp_mdps = sp
        err = sp - rate_mdps
        # derivative on measurement, lightly low-passed (gyro noise)
        d = -(self.rate_kd_us * (rate_mdps - self.prev_rate_mdps)) // dt_us
        self.prev_rate_mdps = rate_mdps
        self.d_mdps += (d - self.d_mdps) >> 2
        base = ((self.rate_kp_q10 * err) >> 10) + self.d_mdps + ((self.rate_ff_q10 * ff_mdps) >> 10)
        # anti-windup: integrate only if that does not push a saturated output further
        di = (self.rate_ki_q10 * err * dt_us) >> 10
        out = base + (self.i_acc + di) // 1000000
        pushing_up = di > 0 and (out > lim or (self.at_limit and self.joint_ndeg >= self.joint_max_ndeg))
        pushing_down = di < 0 and (out < -lim or (self.at_limit and self.joint_ndeg <= self.joint_min_ndeg))
        if not (pushing_up or pushing_down):
            self.i_acc += di
            ilim = lim * 1000000
            if self.i_acc > ilim:
                self.i_acc = ilim
            elif self.i_acc < -ilim:
                self.i_acc = -ilim
        out = base + self.i_acc // 1000000
        if out > lim:
            out = lim
        elif out < -lim:
            out = -lim
        # slew limit on the effort
        step = (self.slew_mdps_per_s * dt_us) // 1000000
        prev = self.effort_mdps
        if out > prev + step:
            out = prev + step
        elif out < prev - step:
            out = prev - step
        # integrate into the joint command, inside the joint limits
        j = self.joint_ndeg + out * dt_us
        # at_limit stays set while the joint rests on a limit, not only on the tick it arrives
        self.at_limit = False
        if j >= self.joint_max_ndeg:
            j = self.joint_max_ndeg
            self.at_limit = True
            if out > 0:
                out = 0
        elif j <= self.joint_min_ndeg:
            j = self.joint_min_ndeg
            self.at_limit = True
            if out < 0:
                out = 0
        self.joint_ndeg = j
        self.effort_mdps = out

    def effort_permille(self):
        return (self.effort_mdps * 1000) // self.effort_limit_mdps
