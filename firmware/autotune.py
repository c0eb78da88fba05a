"""Relay-feedback auto-tuning (Astrom-Hagglund) for one axis, and the tuning rules.

A relay with hysteresis drives the axis' effort (the controller output:
joint rate open-loop, torque closed-loop) to +d or -d by the sign of the
camera's rate error (the inner loop of the cascade, with the rate
setpoint 0), switching only when the error leaves +-hyst. The loop settles
into a limit cycle near the frequency where the rate loop's phase lag is
180 deg; its period is the ultimate period Pu and, from the rate's
amplitude a, the describing function gives the ultimate gain
``Ku = 4 d / (pi a)``. The hysteresis turns the relay's phase by
asin(hyst / a), which moves the cycle off the -180 deg point (a fixed
0.5 deg/s against a 1 deg/s swing read Ku 2x low in the simulator), so
both adapt: noise switching the relay back within 3 ticks doubles the
hysteresis, and a swing under six hystereses doubles the relay (up to
``relay_max_mdps``). Integer maths, time passed in::

    tuner = RelayTuner()
    tuner.start(relay_mdps=2500, hyst_udeg=50, cycles=4, max_us=5000000, relay_max_mdps=20000)
    while tuner.state == TUNE_RUNNING:
        effort_mdps = tuner.step(0 - rate_mdps, dt_us)    # drive the axis with it
    ku, pu = tuner.ku(), tuner.pu_us                      # effort per unit of rate error, and us

:func:`gains_from_ultimate` turns (Ku, Pu) into the cascade's gains. The
default rule, ``RULE_CASCADE``, is made for the gimbal's job, rejecting the
handle's motion: rate_kp = 0.55 Ku (a gain margin of 1.8 on the relay's
Ku, more on axes whose swing is a triangle, which the relay reads up to
8 / pi^2 low from its peak; the lightest axis, pitch, rang on for the
whole 5 deg step at 0.6 Ku), Ti = 4 Pu (the integral's phase lag at the rate loop's crossover stays
under 5 deg), angle_kp = pi / (4 Pu) (the outer loop crosses over near an
eighth of the ultimate frequency, a quarter of the rate loop's). Checked
in the simulator against a grid search over the same gains, for three
phones (docs/benchmarks.md). Tyreus-Luyben (Kp = Ku / 3.2, Ti = 2.2 Pu)
and classic Ziegler-Nichols (Kp = Ku / 2.2, Ti = Pu / 1.2: about 65 %
overshoot) remain, with angle_kp = pi / (2 Pu).

The open-loop (field-angle) drive is another plant: the effort is a joint
rate integrated into the field angle, which holds the rotor like a spring,
so camera rate / effort = wn^2 / (s^2 + 2 zeta wn s + wn^2), a lightly
damped resonance (2-7 Hz, zeta ~ 0.05) that only the rate derivative
damps. There the relay runs on the camera's angle (``AxisAutotune.start``
with ``on_angle``): angle / effort adds the joint's integrator (-90 deg) to
the spring's -90 deg at wn, so the cycle sits at the resonance (the loop's
delay moves it by zeta * wn * tan(wn T), negligible) and Pu gives
wn = 2 pi / Pu; there |angle / effort| = 1 / (2 zeta wn), so the angle
relay's Ku (1/s) gives zeta = Ku / (2 wn). ``RULE_SPRING`` places the rate
loop's closed-loop poles from them: with a PD on the camera rate the loop's
characteristic polynomial is s^2 + (2 zeta + Kd wn) wn s + (1 + Kp) wn^2,
so Kp sets the stiffness (rejection of the handle's motion below the
resonance) and Kd = (2 zeta_cl sqrt(1 + Kp) - 2 zeta) / wn gives the chosen
damping. See :func:`gains_spring` for the constants and why. The angle
relay grows (up to the MSG_TUNE relay) until the camera swings 0.5 deg
(smaller swings read the motor's cogging as damping: pitch's zeta 0.62
instead of 0.08) and counts a cycle only once its swing has settled.
"""

import math

try:
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const  # type: ignore[assignment,no-redef]

TUNE_IDLE = const(0)
TUNE_RUNNING = const(1)
TUNE_DONE = const(2)
TUNE_FAILED = const(3)

# why a run failed (RelayTuner.reason)
TUNE_OK = const(0)
TUNE_TIMEOUT = const(1)  # no steady limit cycle before max_us
TUNE_TOO_BIG = const(2)  # the angle swung beyond max_swing_udeg: relay too strong
TUNE_TOO_SMALL = const(3)  # the swing stayed inside the hysteresis: relay too weak or noise
TUNE_OUT_OF_RANGE = const(4)  # the rule's gains fall outside the config's ranges: not applied
TUNE_REFUSED = const(5)  # the tick could not tune (motors off, or the axis is not a BLDC/closed-loop one)

_SKIP_CYCLES = const(2)  # the first cycles carry the start transient
_CHATTER_TICKS = const(3)  # the relay switching back within 3 ticks is noise: the hysteresis doubles
_MIN_SWING_ANGLE_UDEG = const(500000)  # an angle relay grows until the camera swings +-0.5 deg at least
_MIN_SWING_HYST = const(6)  # a swing under 6 hystereses is grown: the relay doubles (up to relay_max) and starts again


class RelayTuner:
    """One axis' relay experiment, stepped once per control tick."""

    def __init__(self):
        self.state = TUNE_IDLE
        self._clear(0, 0, 0, 0, 0, 0)

    def _clear(self, relay_mdps, hyst_udeg, cycles, max_us, max_swing_udeg, relay_max_mdps, settle=False,
               min_swing_udeg=0):
        # the one place that sets every field: a new experiment starts from nothing
        self.reason = TUNE_OK
        self.settle = settle
        self.min_swing_udeg = min_swing_udeg
        self._prev_amp = 0
        self.relay_mdps = relay_mdps
        self.relay_max_mdps = relay_max_mdps if relay_max_mdps > relay_mdps else relay_mdps
        self.hyst_udeg = hyst_udeg
        self.cycles = cycles
        self.max_us = max_us
        self.max_swing_udeg = max_swing_udeg
        self.out = relay_mdps
        self._ticks = _CHATTER_TICKS  # since the last switch (the first one is never chatter)
        self.t_us = 0
        self.n = 0  # completed cycles (rising switches after the first)
        self.pu_us = 0
        self.amp_udeg = 0
        self._last_rise_us = -1
        self._sum_period = 0
        self._sum_amp = 0
        self._hi = 0
        self._lo = 0

    def start(self, relay_mdps, hyst_udeg, cycles=4, max_us=5000000, max_swing_udeg=20000000, relay_max_mdps=0,
              settle=False, min_swing_udeg=0):
        """``hyst_udeg`` and ``max_swing_udeg`` are in the units of the error given to step() (any).

        The hysteresis adapts to the noise: a switch back within 3 ticks of the
        last one is noise, not the limit cycle, so the hysteresis doubles and
        the count starts again. ``relay_max_mdps`` > ``relay_mdps``: a swing under six hystereses
        doubles the relay (up to that) and starts the count again, so the
        hysteresis stays small beside the swing and the cycle sits near the
        -180 deg point the rules assume. ``settle``: a cycle counts only once
        its swing is within 1/32 of the previous cycle's (a lightly damped
        resonance takes many cycles to reach its steady swing: counted
        earlier, Ku read 1.5x high). ``min_swing_udeg``: the relay also
        grows while the swing is under it (a swing too small for the plant's
        friction and cogging reads them as damping).
        """
        if relay_mdps <= 0 or hyst_udeg < 0 or cycles < 1 or max_us <= 0:
            raise ValueError("relay_mdps > 0, hyst_udeg >= 0, cycles >= 1 and max_us > 0 needed, got %r, %r, %r, %r"
                             % (relay_mdps, hyst_udeg, cycles, max_us))
        self.state = TUNE_RUNNING
        self._clear(relay_mdps, hyst_udeg, cycles, max_us, max_swing_udeg, relay_max_mdps, settle, min_swing_udeg)

    def step(self, error_udeg, dt_us):
        """The relay's output (mdps) for this tick's angle error (target - angle)."""
        if self.state != TUNE_RUNNING:
            return 0
        self.t_us += dt_us
        e = error_udeg
        self._ticks += 1
        if e > self._hi:
            self._hi = e
        if e < self._lo:
            self._lo = e
        if e > self.max_swing_udeg or e < -self.max_swing_udeg:
            self._end(TUNE_FAILED, TUNE_TOO_BIG)
            return 0
        if self.out < 0 and e > self.hyst_udeg:
            self.out = self.relay_mdps
            self._switched()
            self._rise()
        elif self.out > 0 and e < -self.hyst_udeg:
            self.out = -self.relay_mdps
            self._switched()
        if self.state == TUNE_RUNNING and self.t_us >= self.max_us:
            self._end(TUNE_FAILED, TUNE_TOO_SMALL if self._last_rise_us < 0 else TUNE_TIMEOUT)
            return 0
        return self.out

    def _switched(self):
        if self._ticks < _CHATTER_TICKS:  # noise switched it: a wider hysteresis, and count afresh
            self.hyst_udeg = 2 * self.hyst_udeg + 1
            self._restart()
        self._ticks = 0

    def _restart(self):
        self.n = 0
        self._sum_period = 0
        self._sum_amp = 0
        self._last_rise_us = -1

    def _rise(self):
        # one full cycle ends at each rising switch: its period and its peak-to-peak swing
        if self._last_rise_us >= 0:
            k = self.n
            self.n += 1
            amp = (self._hi - self._lo) // 2
            d = amp - self._prev_amp
            self._prev_amp = amp
            if self.settle and k >= _SKIP_CYCLES and (d > amp >> 5 or d < -(amp >> 5)):
                # still growing or shrinking towards its steady swing: count from the next cycle
                self._sum_period = 0
                self._sum_amp = 0
                self.n = _SKIP_CYCLES
            elif k >= _SKIP_CYCLES and (amp < _MIN_SWING_HYST * self.hyst_udeg or amp < self.min_swing_udeg) \
                    and self.relay_mdps < self.relay_max_mdps:
                # too small a swing beside the hysteresis: a stronger relay, and the count starts again
                r = 2 * self.relay_mdps
                self.relay_mdps = r if r < self.relay_max_mdps else self.relay_max_mdps
                self.out = self.relay_mdps
                self._restart()
            elif k >= _SKIP_CYCLES:
                self._sum_period += self.t_us - self._last_rise_us
                self._sum_amp += amp
                if k + 1 - _SKIP_CYCLES >= self.cycles:
                    self.pu_us = self._sum_period // self.cycles
                    self.amp_udeg = self._sum_amp // self.cycles
                    if self.amp_udeg <= self.hyst_udeg:
                        self._end(TUNE_FAILED, TUNE_TOO_SMALL)
                    else:
                        self._end(TUNE_DONE, TUNE_OK)
        self._last_rise_us = self.t_us
        self._hi = 0
        self._lo = 0

    def abort(self, reason):
        """Stop the experiment from outside (e.g. the angle wandered too far)."""
        self._end(TUNE_FAILED, reason)

    def _end(self, state, reason):
        self.state = state
        self.reason = reason
        self.out = 0

    def ku(self):
        """Ultimate gain: effort (mdps) per unit of the error's units (a rate relay: the rate_kp scale).

        The relay's describing function has the magnitude 4 d / (pi a) at any
        hysteresis (the hysteresis only turns its phase, by asin(h / a), kept
        small by the automatic relay growth).
        """
        return 4.0 * self.relay_mdps / (math.pi * self.amp_udeg)


RULE_TYREUS_LUYBEN = 0
RULE_ZIEGLER_NICHOLS = 1
RULE_CASCADE = 2
RULE_SPRING = 3  # the open-loop drive's angle relay (set by the firmware itself, not asked for)
RULES = (RULE_TYREUS_LUYBEN, RULE_ZIEGLER_NICHOLS, RULE_CASCADE)


_CASCADE_KP = 0.55
_CASCADE_TI = 4.0
_CASCADE_ANGLE = math.pi / 4.0


def gains_from_ultimate(ku, pu_s, rule=RULE_TYREUS_LUYBEN):
    """(angle_kp 1/s, rate_kp, rate_ki 1/s) for the firmware cascade from the rate loop's Ku and Pu (s)."""
    if not ku > 0 or not pu_s > 0:
        raise ValueError("ultimate gain and period must be positive, got %r, %r" % (ku, pu_s))
    if rule == RULE_CASCADE:
        return _CASCADE_ANGLE / pu_s, ku * _CASCADE_KP, ku * _CASCADE_KP / (_CASCADE_TI * pu_s)
    if rule == RULE_TYREUS_LUYBEN:
        kp, ti = ku / 3.2, 2.2 * pu_s
    elif rule == RULE_ZIEGLER_NICHOLS:
        kp, ti = ku / 2.2, pu_s / 1.2
    else:
        raise ValueError("unknown tuning rule %r" % (rule,))
    return math.pi / (2.0 * pu_s), kp, kp / ti


_SPRING_KP = 4.0
_SPRING_ZETA = 0.7
_SPRING_TI = 20.0
_LOOP_LAG_S = 0.011  # the rate loop's lag: gyro filter (42 Hz, ~4 ms), derivative filter (~4 ms), tick (1.5 ms)
_KD_MAX_S = 0.1  # rate_kd_ms's range (and the controller's Q8 kd at 1 kHz)


def gains_spring(ku_per_s, pu_s):
    """(angle_kp 1/s, rate_kp, rate_ki 1/s, rate_kd_ms) for an open-loop axis from its angle relay's Ku (1/s), Pu (s).

    wn = 2 pi / Pu and zeta = Ku / (2 wn) (module docstring). With a PD on
    the camera rate the closed rate loop is
    s^2 + (2 zeta + Kd wn) wn s + (1 + Kp) wn^2. Kp is its stiffness: the
    handle's motion below the resonance is rejected about 1 + Kp times, so
    Kp is as high as the loop's lag allows: 4, or less where the closed
    loop's natural frequency sqrt(1 + Kp) wn would pass wc_max =
    (pi / 4) / T, where the lag T costs 45 deg of phase. T = 11 ms: the
    gyro's 42 Hz filter, the derivative's filter and the tick add up to
    about 9.5 ms; the margin was set on the simulator's light pitch axis,
    which held a 6-8 deg limit cycle after a 5 deg step at Kp 4 (6.6 Hz
    spring) and at Kp 3.8 (the 0.26 kg phone, 5.7 Hz, T = 10 ms), and
    settled at Kp 2.6 and 3.0 respectively.
    Kd places the closed loop's damping at 0.7:
    Kd = (2 * 0.7 * sqrt(1 + Kp) - 2 zeta) / wn, capped at 100 ms.
    Ti = 20 / wn: the integral only trims a steady rate error, 3 deg of
    phase at the resonance. angle_kp = sqrt(1 + Kp) wn / 4: a quarter of
    the rate loop's natural frequency, the cascade's usual separation.
    """
    if not ku_per_s > 0 or not pu_s > 0:
        raise ValueError("ultimate gain and period must be positive, got %r, %r" % (ku_per_s, pu_s))
    wn = 2.0 * math.pi / pu_s
    zeta = ku_per_s / (2.0 * wn)
    wc_max = (math.pi / 4.0) / _LOOP_LAG_S
    kp = (wc_max / wn) ** 2 - 1.0
    if kp > _SPRING_KP:
        kp = _SPRING_KP
    if kp < 0.5:
        kp = 0.5
    wc = math.sqrt(1.0 + kp) * wn
    kd_s = (2.0 * _SPRING_ZETA * wc / wn - 2.0 * zeta) / wn
    if kd_s < 0.0:
        kd_s = 0.0
    if kd_s > _KD_MAX_S:
        kd_s = _KD_MAX_S
    return wc / 4.0, kp, kp * wn / _SPRING_TI, 1000.0 * kd_s


class AxisAutotune:
    """One relay experiment on the firmware at a time, and its result turned into checked config values.

    The Gimbal's tick asks ``active(i)`` per axis; for the tuned axis it
    drives the effort from ``tuner.step()`` instead of the axis controller.
    When the tuner stops, ``result(cfg)`` computes the gains by the chosen
    rule, sets them on a copy of the config (so every range is checked) and
    returns (state, reason, config or None).
    """

    def __init__(self):
        self.tuner = RelayTuner()
        self.axis = -1
        self.rule = RULE_TYREUS_LUYBEN
        self.reported = -1  # tuner cycles last reported to the host
        self.on_angle = False  # the relay runs on the camera's angle (open-loop drive), else on its rate
        self.gains = (0.0, 0.0, 0.0, 0.0)
        self.ku = 0.0

    def start(self, axis, rule, relay_mdps, hyst_udeg, max_us=10000000, relay_max_mdps=0, on_angle=False):
        """``on_angle``: an open-loop axis, the relay on the angle error (udeg) and ``RULE_SPRING``, whatever ``rule``."""
        if not 0 <= axis <= 2 or rule not in RULES or relay_mdps <= 0:
            return False
        self.tuner.start(relay_mdps, hyst_udeg, cycles=4, max_us=max_us, relay_max_mdps=relay_max_mdps,
                         settle=on_angle, min_swing_udeg=_MIN_SWING_ANGLE_UDEG if on_angle else 0)
        self.axis = axis
        self.rule = RULE_SPRING if on_angle else rule
        self.on_angle = on_angle
        self.reported = -1
        self.gains = (0.0, 0.0, 0.0, 0.0)
        self.ku = 0.0
        return True

    def result(self, cfg, axis_key):
        """(state, reason, new config or None) once the tuner has stopped; ends the session."""
        t = self.tuner
        axis = self.axis
        self.axis = -1
        if t.state != TUNE_DONE:
            return t.state, t.reason, None
        try:
            if self.rule == RULE_SPRING:
                self.ku = t.ku() * 1000.0  # mdps per udeg -> 1/s
                self.gains = gains_spring(self.ku, t.pu_us / 1e6)
            else:
                self.ku = t.ku()
                g = gains_from_ultimate(self.ku, t.pu_us / 1e6, self.rule)
                self.gains = (g[0], g[1], g[2], 0.0)  # the rule's D is the rate P
        except ValueError:
            return TUNE_FAILED, TUNE_OUT_OF_RANGE, None
        trial = cfg.copy()
        names = ("angle_kp", "rate_kp", "rate_ki", "rate_kd_ms")
        for k in range(4):
            if trial.set(axis_key(axis, names[k]), self.gains[k]) != 0:
                return TUNE_FAILED, TUNE_OUT_OF_RANGE, None
        return TUNE_DONE, TUNE_OK, trial
