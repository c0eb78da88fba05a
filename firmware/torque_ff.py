"""Torque feed-forward from the handle's accelerometer, learned online, for axes on the closed-loop drive.

When the hand sways, bobs or tilts the handle, every joint has to push on
the part of the gimbal beyond it: the payload's centre of mass is never
exactly on the joint axes, so a linear acceleration of the joint's pivot
(and a tilt of gravity, which an accelerometer cannot tell from one) needs
a torque ``m * (c x f)`` about the axis, with ``f`` the specific force the
handle's accelerometer measures and ``c`` the offset of the centre of mass.
That is linear in the three components of ``f`` with unknown coefficients
(mass times offset, per axis; they change with every phone), so the
firmware learns them while it runs:

- regressors: the handle's specific force (accelerometer counts,
  forward-right-down), turned into the yaw arm's frame by the yaw joint's
  angle (the frame the roll and pitch subtrees hang in) and high-passed
  (time constant ``2**shift`` ticks, about 4 s): the slow part is gravity
  at the current attitude, which the rate loop's integrator already holds;
- learning signal: the rate loop's own effort, high-passed the same way.
  With the feed-forward added to the torque, the feedback part is what the
  prediction still misses, so it is the prediction error (feedback-error
  learning); a normalised LMS step ``w += mu * e * f / (4 eps + |f|^2)``
  moves the coefficients towards it, with a slow leak (2**-13 a step) so
  a payload change is forgotten; one axis learns per tick (round robin), and
  not while its feedback is saturated (it then is not what the axis needs);
- the excitation check: with ``|f|^2 <= eps`` (the handle still: under
  about 0.05 g of high-passed acceleration) nothing is learned and nothing
  leaks, so the coefficients cannot drift on a table; the step's
  normaliser is ``4 eps + |f|^2``, so just above the gate the steps stay
  small (noise there would otherwise move the weights as much as walking);
- the output: ``ff_q15[axis]``, a torque as a fraction of the axis' full
  amplitude (Q15), clamped to half of it; FocDrive.duties adds it to the
  feedback's torque.

Why no angular-acceleration regressors: the motors' torques react on the
handle, so the handle's differenced gyro answers to the feed-forward
itself in the same tick; in the simulator that loop went unstable (jitter
0.05 -> 0.5 deg). docs/firmware.md has the figures.

Integers only (viper; every intermediate within +-2**30). State and
parameters live in one ``array('i')``, signed values stored with an offset
(``OFF``) so viper's ptr32 loads, which are unsigned on 64-bit ports, stay
right for negative values; the output goes straight into the words the
drive reads (FocDrive's packed array), so the tick pays no extra loads.

    tff = TorqueFeedForward(accel_frd)          # the list the handle's sample is written into
    tff.configure(mu=0.005, loop_hz=1000, active=[1, 1, 1], limits_mdps=[25000, 100000, 25000])
    tff.update(yaw_joint_udeg, e_yaw, e_pitch, e_roll)   # each tick, efforts (mdps) after the controllers
    tff.ff_q15_at(axis)                                  # the feed-forward torque, Q15
"""

from array import array

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython, ptr32  # type: ignore[assignment,no-redef]

from .fixmath import SIN_Q15

OFF = const(0x20000000)  # stored = value + OFF: values within +-2**29
_F_MAX = const(16383)  # regressor clamp, accelerometer counts (2 g of high-passed acceleration at 8192/g)
_E_MAX = const(32767)  # learning signal clamp, Q15 of full effort
_E_SAT = const(30000)  # a feedback effort beyond 92 % of its limit counts as saturated
_W_MAX = const(4194303)  # weight clamp (Q20: 2**22 = a full torque per g)
FF_MAX_Q15 = const(16384)  # the feed-forward may supply at most half of an axis' torque
_LEAK_SHIFT = const(13)
EPS_COUNTS2 = const(160000)  # about (0.05 g)**2 in accelerometer counts: below it the handle is still
_UDEG_PER_SIN_STEP = const(234375)
_STEPS = const(1536)
_QUARTER = const(384)
# words of TorqueFeedForward._a: state (signed, stored + OFF)
_S_MF = const(0)  # 3: regressor means, counts * 2**shift
_S_ME = const(3)  # 3: effort means, Q15 * 2**shift
_S_W = const(6)  # 9: weights, axis-major, Q20 (torque Q15 = sum(w * f) >> 20)
_S_F = const(15)  # 3: this tick's regressors
_S_LEN = const(18)
# then parameters (each >= 0, stored as they are)
_P_MU = const(18)  # mu, Q16 (0 = off)
_P_SHIFT = const(19)
_P_ACTIVE = const(20)  # 3: 1 for an axis on the closed-loop drive
_P_LIM = const(23)  # 3: effort limit >> 10, as FocDrive.duties scales the effort
_P_NEXT = const(26)  # the axis whose weights learn this tick (round robin)
_P_OUT = const(27)  # where axis 0's output goes in the output array
_P_STRIDE = const(28)  # and how far apart the axes' outputs are
_LEN = const(29)


class TorqueFeedForward:
    def __init__(self, accel, out=None, base=0, stride=1):
        """``accel``: the list whose first three items are the handle's specific force (counts, FRD)
        when update() runs; ``out[base + stride * axis]``: where the torques go (value + OFF)."""
        self.accel = accel
        self._a = array("i", [OFF] * _S_LEN + [0] * (_LEN - _S_LEN))
        if out is None:
            out = array("i", [OFF] * 3)
        self.out = out
        self._a[_P_OUT] = base
        self._a[_P_STRIDE] = stride
        self.enabled = False
        self.hold()

    def configure(self, mu, loop_hz, active, limits_mdps):
        """``mu`` the normalised step (0 = off), ``active`` 1 per closed-loop axis, their effort limits in mdps."""
        if not 0.0 <= mu <= 0.05:
            raise ValueError("torque_ff_mu = %r: must be 0 (off) to 0.05" % (mu,))
        p = self._a
        p[_P_MU] = int(mu * 65536 + 0.5)
        # about 4 s of high-pass time constant at any loop rate (2**12 ticks at 1 kHz): well below
        # a walker's 0.8-2 Hz, so the regressors keep their phase there
        shift = 0
        while (1 << (shift + 1)) <= loop_hz:
            shift += 1
        p[_P_SHIFT] = shift + 3
        any_axis = False
        for i in range(3):
            p[_P_ACTIVE + i] = 1 if active[i] else 0
            p[_P_LIM + i] = max(1, int(limits_mdps[i]) >> 10)
            if active[i]:
                any_axis = True
        self.enabled = p[_P_MU] > 0 and any_axis
        if not self.enabled:
            self.reset()

    def reset(self):
        """Forget everything learned, output nothing."""
        for k in range(_S_LEN):
            self._a[k] = OFF
        self.hold()

    def hold(self):
        """No handle sample this tick: output nothing (the feedback holds the camera alone)."""
        a = self._a
        for k in range(3):
            self.out[a[_P_OUT] + a[_P_STRIDE] * k] = OFF

    def ff_q15_at(self, axis):
        a = self._a
        return self.out[a[_P_OUT] + a[_P_STRIDE] * axis] - OFF

    def weights(self):
        """The learned coefficients, [axis][x, y, z], Q20 (torque Q15 per accelerometer count * 2**20)."""
        s = self._a
        return [[s[_S_W + 3 * k + i] - OFF for i in range(3)] for k in range(3)]

    @micropython.viper
    def update(self, yaw_udeg: int, e0: int, e1: int, e2: int):
        """One tick: the handle's sample in ``self.accel``, the axes' efforts ``e0..e2`` (mdps) of this tick."""
        s = ptr32(self._a)
        p = s
        out = ptr32(self.out)
        sh = p[_P_SHIFT]
        accel = self.accel
        # the yaw arm's frame: the handle's x and y turned by the yaw joint (Q10 trig from the sine table)
        i = (yaw_udeg // _UDEG_PER_SIN_STEP) % _STEPS
        tab = SIN_Q15
        sy = int(tab[i]) >> 5
        cy = int(tab[(i + _QUARTER) % _STEPS]) >> 5
        ax = int(accel[0])
        ay = int(accel[1])
        s[_S_F] = ((cy * ax + sy * ay) >> 10) + OFF
        s[_S_F + 1] = ((cy * ay - sy * ax) >> 10) + OFF
        s[_S_F + 2] = int(accel[2]) + OFF
        # high-pass each regressor (the mean follows with time constant 2**sh ticks)
        norm = 0
        for k in range(3):
            x = s[_S_F + k] - OFF
            m = s[_S_MF + k] - OFF
            m += x - (m >> sh)
            s[_S_MF + k] = m + OFF
            x -= m >> sh
            if x > _F_MAX:
                x = _F_MAX
            elif x < 0 - _F_MAX:
                x = 0 - _F_MAX
            s[_S_F + k] = x + OFF
            norm += x * x
        f0 = s[_S_F] - OFF
        f1 = s[_S_F + 1] - OFF
        f2 = s[_S_F + 2] - OFF
        # one axis learns this tick (round robin): its effort's high-pass steps 3 ticks at once
        k = p[_P_NEXT]
        p[_P_NEXT] = (k + 1) % 3
        if p[_P_ACTIVE + k]:
            e = e0
            if k == 1:
                e = e1
            elif k == 2:
                e = e2
            # the feedback's effort as a fraction of the axis' full torque (Q15), high-passed
            e = (e << 5) // p[_P_LIM + k]
            # a saturated feedback is not what the axis needed: no lesson from this tick
            sat = e > _E_SAT or e < 0 - _E_SAT
            if e > _E_MAX:
                e = _E_MAX
            elif e < 0 - _E_MAX:
                e = 0 - _E_MAX
            m = s[_S_ME + k] - OFF
            m += 3 * (e - (m >> sh))
            s[_S_ME + k] = m + OFF
            e -= m >> sh
            if e > _E_MAX:
                e = _E_MAX
            elif e < 0 - _E_MAX:
                e = 0 - _E_MAX
            if norm > EPS_COUNTS2 and not sat:
                # normalised LMS on the feedback's share: dw = mu * e * f / (4 eps + |f|^2), Q20
                d = (4 * EPS_COUNTS2 + norm) // (p[_P_MU] << 4)
                if d < 1:
                    d = 1
                half = d >> 1
                for i in range(3):
                    f = s[_S_F + i] - OFF
                    w = s[_S_W + 3 * k + i] - OFF
                    w += (e * f + half) // d - (w >> _LEAK_SHIFT)
                    if w > _W_MAX:
                        w = _W_MAX
                    elif w < 0 - _W_MAX:
                        w = 0 - _W_MAX
                    s[_S_W + 3 * k + i] = w + OFF
        # every closed-loop axis: the torque its feedback would otherwise have to find, sum(w * f) >> 20
        # (each product < 2**30)
        o = p[_P_OUT]
        for k in range(3):
            if not p[_P_ACTIVE + k]:
                continue
            w = _S_W + 3 * k
            t = ((((s[w] - OFF) >> 8) * f0) >> 12) + ((((s[w + 1] - OFF) >> 8) * f1) >> 12) \
                + ((((s[w + 2] - OFF) >> 8) * f2) >> 12)
            if t > FF_MAX_Q15:
                t = FF_MAX_Q15
            elif t < 0 - FF_MAX_Q15:
                t = 0 - FF_MAX_Q15
            out[o] = t + OFF
            o += p[_P_STRIDE]
