"""Benchmark: what one helper call costs inside the tick, against the same maths written inline (not flashed).

    MICROPYPATH=. micropython -c "from firmware.offboard import bench_calls; bench_calls.main()"

The tick calls ``fixmath.wrap_udeg`` (viper) from viper and native code
instead of carrying inlined copies. This times 200 000 wraps each way
(best of 5 runs, ns per iteration, loop overhead included): written inline
in a viper loop, the real ``wrap_udeg`` called from viper and from native
code, and a native copy of it called from native code (what a call costs
when the helper is native). The last line is JSON.
"""

import json
import time

from ..fixmath import wrap_udeg

try:
    import micropython
except ImportError:  # CPython
    from ..mpcompat import micropython  # type: ignore[assignment,no-redef]

_N = 200000


@micropython.native
def _wrap_native(a):
    return (a + 180000000) % 360000000 - 180000000


@micropython.viper
def _inline(n: int) -> int:
    s = 0
    for i in range(n):
        s += (i * 7 + 180000000) % 360000000 - 180000000
    return s


@micropython.viper
def _viper_calls_viper(n: int) -> int:
    s = 0
    for i in range(n):
        s += int(wrap_udeg(i * 7))
    return s


@micropython.native
def _native_calls_viper(n):
    s = 0
    for i in range(n):
        s += wrap_udeg(i * 7)
    return s


@micropython.native
def _native_calls_native(n):
    s = 0
    for i in range(n):
        s += _wrap_native(i * 7)
    return s


def _ns_per_iteration(f):
    best = None
    for _ in range(5):
        t0 = time.ticks_us()  # type: ignore[attr-defined]
        f(_N)
        dt = time.ticks_diff(time.ticks_us(), t0)  # type: ignore[attr-defined]
        best = dt if best is None or dt < best else best
    return best * 1000 // _N


def main():
    r = {
        "inline_ns": _ns_per_iteration(_inline),
        "viper_calls_viper_ns": _ns_per_iteration(_viper_calls_viper),
        "native_calls_viper_ns": _ns_per_iteration(_native_calls_viper),
        "native_calls_native_ns": _ns_per_iteration(_native_calls_native),
    }
    for k, v in r.items():
        print("%-24s %4d ns" % (k, v))
    print(json.dumps(r))


if __name__ == "__main__":
    main()
