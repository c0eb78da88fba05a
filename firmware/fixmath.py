"""Integer maths for the control loop: angles, trig tables, square root, tick differences.

MicroPython boxes every float on the heap, so the per-tick code works in
integers only, and on 32-bit ports (RP2040, ESP32) only integers within
+-2**30 are "small" (stored inline, no allocation). Every helper here keeps
its intermediates inside that range for the inputs the loop gives it (see
docs/firmware.md, "Units and Q formats"). Units: angles in micro-degrees
(udeg), rates in milli-degrees per second (mdps); mdps * us = nano-degrees,
which the loop integrates exactly as whole udeg plus a 0..999 ndeg remainder.

    >>> atan2_udeg(1, 1)
    45000000
"""

import math

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]


UDEG_PER_TURN = const(360000000)
UDEG_HALF_TURN = const(180000000)
# MicroPython's time.ticks_* wrap at 2**30. Constants are written as plain
# literals: a folded expression through 2**30 (or -2**30 written as a unary
# minus) would leave a boxed constant, and every operation with it would
# allocate on a 32-bit port.
TICKS_MASK = const(0x3FFFFFFF)
_TICKS_HALF = const(0x20000000)

# atan(t) for t in [0, 1] at 256 even steps, in udeg; interpolated linearly
# (worst error 0.0001 deg). Built with floats once, at import.
_ATAN_STEPS = const(256)
_ATAN = [int(round(math.degrees(math.atan(i / _ATAN_STEPS)) * 1e6)) for i in range(_ATAN_STEPS + 1)]

# sin over one electrical turn, Q15 (32767 = 1.0); 1536 steps so that
# 120 degrees is a whole number of steps (512).
SIN_STEPS = const(1536)
SIN_THIRD = const(512)
SIN_Q15 = [int(round(32767 * math.sin(2 * math.pi * i / SIN_STEPS))) for i in range(SIN_STEPS)]


@micropython.viper
def ticks_diff(a: int, b: int) -> int:
    """a - b for tick counts that may wrap at 2**30 (board) or never wrap (simulator).

    Exact whenever the true difference is within +-2**29 us (268 s). With
    a, b in [0, 2**30) no intermediate leaves +-2**30. Viper, like the other
    helpers the tick calls: a call costs about half of a native one.
    """
    d = (a - b) & TICKS_MASK
    if d & _TICKS_HALF:
        return d - _TICKS_HALF - _TICKS_HALF
    return d


@micropython.viper
def wrap_udeg(a: int) -> int:
    """Wrap an angle in udeg to [-180 deg, +180 deg) (|a| < 2**30 - 180 deg: machine integers)."""
    return (a + UDEG_HALF_TURN) % UDEG_PER_TURN - UDEG_HALF_TURN


def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@micropython.viper
def atan2_udeg(y: int, x: int) -> int:
    """atan2 of two integers in udeg, in (-180 deg, +180 deg]; atan2(0, 0) = 0.

    Arguments below 2**20 in magnitude (the estimator passes Q19) go
    straight to a two-step division; larger ones (up to 2**30) are first
    shifted down together (the angle does not change, the precision stays
    >= 19 bits). Viper: machine integers, all within +-2**30.
    """
    ax = 0 - x if x < 0 else x
    ay = 0 - y if y < 0 else y
    if ax == 0 and ay == 0:
        return 0
    m = ax if ax > ay else ay
    while m >= 1048576:
        ax >>= 1
        ay >>= 1
        m >>= 1
    # atan of the smaller over the larger (t in [0, 1]); beyond 45 deg it is 90 deg minus that
    lo = ay
    hi = ax
    if ay > ax:
        lo = ax
        hi = ay
    # r = floor(lo * 2**20 / hi), tan in Q20, in two 10-bit steps (operands < 2**30)
    n = lo << 10
    r = n // hi
    r = (r << 10) + ((n - r * hi) << 10) // hi
    i = r >> 12
    tab = _ATAN
    a = int(tab[i])
    if i < _ATAN_STEPS:
        a += ((int(tab[i + 1]) - a) * (r & 4095)) >> 12
    if ay > ax:
        a = 90000000 - a
    if x < 0:
        a = 180000000 - a
    return 0 - a if y < 0 else a


@micropython.native
def isqrt(n, guess=0):
    """Integer square root (floor) of n >= 0 by Newton's method.

    A good ``guess`` (last tick's answer) makes it converge in one or two steps.
    """
    if n <= 0:
        return 0
    # one Newton step from any x > 0 lands at or above the floor root;
    # from there the iteration decreases until it stops
    x = guess if guess > 0 else n
    x = (x + n // x) >> 1
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


def sin_q15(index):
    """sin of an electrical angle given as a table index (any int; SIN_STEPS per turn)."""
    return SIN_Q15[index % SIN_STEPS]
