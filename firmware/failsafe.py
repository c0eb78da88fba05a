"""What the gimbal does about failures: the FAULT register and the link watchdog.

:class:`Faults` holds the FAULT flags. A condition raises its flag (the
telemetry reports each new flag once, as a FAULT frame) and clears it when
it is over. It also keeps the two timers that decide when a condition is
over: good IMU time before the motors come back after an IMU fault
(``fault_recover_ms``; 0 means only a MODE command restarts them), and
200 ms off the joint limits before FAULT joint_limit clears (no chatter at
the boundary).

:class:`LinkWatchdog` is the link failsafe: with no valid SETPOINT or host
HEARTBEAT for ``failsafe_ms`` it turns on (and raises FAULT link_lost once a
host has been seen); the next valid frame turns it off. What the camera does
meanwhile is the modes' business (see modes.py).

    faults = Faults()
    watchdog = LinkWatchdog(faults)
    watchdog.timeout_us = 500000     # failsafe_ms * 1000
    watchdog.start(now_us)           # first tick
    watchdog.alive(now_us)           # a valid SETPOINT or host HEARTBEAT arrived
    if watchdog.check(now_us):       # True on the tick the link is lost
        ...

Pure: time comes in as arguments; nothing here reads a clock.
"""

from .fixmath import ticks_diff
from .protocol import FAULT_IMU_IMPLAUSIBLE, FAULT_IMU_READ, FAULT_LINK_LOST

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]

IMU_FAULTS = FAULT_IMU_READ | FAULT_IMU_IMPLAUSIBLE
_LIMIT_CLEAR_US = const(200000)  # off the joint limits this long before FAULT joint_limit clears
_JOINT_LIMIT = const(0x0020)  # protocol.FAULT_JOINT_LIMIT: joint_limit() tests it each tick, and imported
# names are global lookups in native code


class Faults:
    """The FAULT flags (``flags``), those not yet reported (``pending``), and the recovery timers."""

    def __init__(self):
        self.flags = 0
        self.pending = 0
        self.recover_us = 0  # good IMU time before the motors restart; 0: only a MODE command does
        self._imu_good_us = 0
        self._off_limit_us = 0

    def raise_fault(self, flag):
        self.flags |= flag
        self.pending |= flag

    def clear(self, flag):
        self.flags &= ~flag

    def imu_failed(self, flag):
        """A failed IMU read or an implausible sample: restart the good-IMU time, raise ``flag`` if new."""
        self._imu_good_us = 0
        if not self.flags & flag:
            self.raise_fault(flag)

    @micropython.native
    def imu_recovered(self, dt_us):
        """Count ``dt_us`` of good IMU samples; True (IMU faults cleared) once ``recover_us`` is reached."""
        self._imu_good_us += dt_us
        if self.recover_us and self._imu_good_us >= self.recover_us:
            self.flags &= ~IMU_FAULTS
            return True
        return False

    @micropython.native
    def joint_limit(self, at_limit, dt_us):
        """Raise FAULT joint_limit while an axis rests on a limit; clear it after 200 ms off every limit."""
        if at_limit:
            self._off_limit_us = 0
            if not self.flags & _JOINT_LIMIT:
                self.raise_fault(_JOINT_LIMIT)
        elif self.flags & _JOINT_LIMIT:
            self._off_limit_us += dt_us
            if self._off_limit_us >= _LIMIT_CLEAR_US:
                self.flags &= ~_JOINT_LIMIT


class LinkWatchdog:
    """``active`` is the failsafe (STATE_FAILSAFE): no valid host frame for ``timeout_us``."""

    def __init__(self, faults):
        self.faults = faults
        self.active = False
        self.seen = False  # a host has talked since boot: only then is a silence a lost link
        self.timeout_us = 0
        self._last_us = 0

    def start(self, now_us):
        self._last_us = now_us

    def alive(self, now_us):
        """A valid SETPOINT or host HEARTBEAT arrived at ``now_us``."""
        self._last_us = now_us
        self.seen = True
        if self.active:
            self.active = False
            self.faults.clear(FAULT_LINK_LOST)

    @micropython.native
    def check(self, now_us):
        """Update the failsafe at ``now_us``; True on the tick it turns on."""
        lost = ticks_diff(now_us, self._last_us) >= self.timeout_us  # at failsafe_ms, not one tick later
        if lost == self.active:
            return False
        self.active = lost
        if lost:
            if self.seen:
                self.faults.raise_fault(FAULT_LINK_LOST)
            return True
        self.faults.clear(FAULT_LINK_LOST)
        return False
