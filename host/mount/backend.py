"""The interface every gimbal output driver implements (the AP_Mount backend).

A backend turns a :class:`host.framing.SetpointCommand` into its protocol's
bytes and turns the gimbal's replies into one telemetry dict::

    {"yaw_deg": ..., "pitch_deg": ..., "roll_deg": ...}   # earth frame, protocol-neutral

in the OpenSteady sign convention (yaw positive pans right, pitch positive
tilts up, roll positive rolls right), plus driver-specific extras.

Every call takes the time as an argument (``t_s``, monotonic seconds); the
serial drivers time their reconnects, telemetry requests and heartbeats on
it. (The ``opensteady`` driver hands its timing to ``host.link.Link``.)
Backends must not raise once open: a vanished port marks them disconnected
and they reopen it on a later call (``reconnect_interval_s``).

No value from a device reaches the application unchecked: every backend hands
its parsed telemetry to :meth:`MountBackend.accept_telemetry`, which refuses a
sample with a non-number, a NaN/inf or an implausible value (outside
:data:`TELEMETRY_LIMITS`), keeps the last good one, and counts the refusal
(``rejected``, ``last_rejection``) so the app can report a bad device.
"""

import logging
import math
import numbers

import serial

log = logging.getLogger(__name__)

# Largest plausible magnitude of each telemetry value by unit suffix (multi-turn yaw and joint
# angles allowed up to two turns); exact keys override. A device reporting beyond these is faulty.
TELEMETRY_LIMITS = {"_deg": 720.0, "_dps": 5000.0, "pitch_deg": 180.0, "roll_deg": 180.0}


def telemetry_problem(telemetry):
    """None when every ``*_deg``/``*_dps`` value is a finite number within TELEMETRY_LIMITS, else the reason."""
    for key, value in telemetry.items():
        limit = TELEMETRY_LIMITS.get(key) or TELEMETRY_LIMITS.get(key[key.rfind("_"):])
        if limit is None:
            continue
        kind = type(value)
        # float and int (what the drivers build) first: the numbers.Real check is an ABC lookup, per value
        if kind is not float and kind is not int and (kind is bool or not isinstance(value, numbers.Real)):
            return "%s = %r is not a number" % (key, value)
        if not math.isfinite(value):
            return "%s = %r is not finite" % (key, value)
        if abs(value) > limit:
            return "%s = %.6g is beyond +-%g" % (key, value, limit)
    return None


def silence_problem(name, port_open, heard_s, now_s, alive_s):
    """The health line for a device whose port is open: None, or how long it has been silent."""
    if not port_open or now_s is None:
        return None
    if heard_s is None:
        return "the %s gimbal has sent no valid frame since the port opened" % name
    if now_s - heard_s > alive_s:
        return "the %s gimbal has sent no valid frame for %.1f s" % (name, now_s - heard_s)
    return None


class MountBackend:
    """Base class and the ``none`` driver: accepts everything, moves nothing."""

    name = "none"
    telemetry = None  # the last accepted telemetry dict
    rejected = 0  # device messages refused at the boundary (bad values)
    last_rejection = None  # why the last one was refused
    # The period at which the device's own clock in ``telemetry["device_time_us"]`` wraps; None: it sends none
    # (then a sample is placed at its arrival time). See host.attitude_history.
    device_time_wrap_us = None
    # How far the attitude in a sample lags its device time (seconds): the device's IMU filter delay, where it
    # reports one (OpenSteady firmware, in VERSION). See host.attitude_history.
    attitude_delay_s = 0.0
    _arrived = None  # (sample, arrival_s) accepted and not yet taken by the frontend (take_samples)

    def accept_telemetry(self, telemetry, what="telemetry", arrival_s=None):
        """Keep ``telemetry`` if every value is plausible (see module docstring); count and log it if not.
        ``arrival_s``: when its frame began to arrive (host.link stamps it), None: when the frontend polled."""
        problem = telemetry_problem(telemetry)
        if problem is None:
            self.telemetry = telemetry
            if self._arrived is None:
                self._arrived = []
            self._arrived.append((telemetry, arrival_s))
            return True
        self.reject(what, problem)
        return False

    def take_samples(self):
        """(sample, arrival_s) of every sample accepted since the last call, oldest first (all of them, not
        only the newest); arrival_s None: the driver knows no better than the time of the poll. An empty
        tuple when none came (most polls: nothing is allocated for them)."""
        out = self._arrived
        if out is None:
            return ()
        self._arrived = None
        return out

    def health_problem(self):
        """None while the device is healthy, else one line saying what is wrong (silent, talking something else)."""
        return None

    def reject(self, what, problem):
        """Count one refused device message (``what``, e.g. "attitude status") and say why, once in a while."""
        self.rejected += 1
        self.last_rejection = "%s: %s" % (what, problem)
        if self.rejected == 1 or self.rejected % 100 == 0:
            log.warning("the %s gimbal sent bad %s (%s); ignored (%d so far)", self.name, what, problem, self.rejected)

    def open(self):
        """Open the transport; raise host.link.LinkError (or subclass) with a user-facing message."""

    def close(self):
        """Close the transport. Never raises."""

    @property
    def connected(self):
        return True

    def send_setpoint(self, cmd, t_s):
        """Send one SetpointCommand; returns the number of bytes written (0 if none)."""
        return 0

    def poll(self, t_s):
        """Read whatever arrived (never blocks); returns the newest telemetry dict or None."""
        return None

    def make_safe(self, t_s, motors_off=False):
        """Stop all motion (hold the current attitude); with ``motors_off`` also de-energise the motors."""

    light_status = None  # the device's answer to the last set_light: "ok" or a NACK name; None before one

    def set_light(self, level):
        """Ask for fill light ``level`` (0 off, 1..3); returns False when this protocol has no fill light."""
        if level and self.light_status is None:
            log.info("the %s gimbal has no fill light (only OpenSteady firmware drives one)", self.name)
            self.light_status = "not_supported"
        return False


class SerialBackend(MountBackend):
    """Shared plumbing for drivers that own a pyserial port: open, write, read, reconnect."""

    def __init__(self, url, baud, reconnect_interval_s=1.0, alive_s=1.0):
        self.url = url
        self.baud = baud
        self.reconnect_interval_s = reconnect_interval_s
        self.alive_s = alive_s
        self.port = None
        self.reconnects = 0
        self._retry_at_s = None  # set when the port was lost
        self._heard_s = None  # when the device last sent a valid frame
        self._now_s = None  # the latest time this backend was called with

    @property
    def connected(self):
        """The port is open and the device sent a valid frame within ``alive_s`` (AP_Mount's 1 s health
        rule): an open port with nothing, or only garbage, behind it is not a connected gimbal."""
        return (self.port is not None and self._heard_s is not None
                and self._now_s - self._heard_s <= self.alive_s)

    @property
    def port_open(self):
        return self.port is not None

    def heard(self, t_s):
        """The device sent a valid frame at ``t_s``."""
        self._heard_s = t_s

    def health_problem(self):
        return silence_problem(self.name, self.port is not None, self._heard_s, self._now_s, self.alive_s)

    def open(self):
        from opensteady.host.link import open_port  # the link's typed, user-facing port errors

        self.port = open_port(self.url, self.baud)
        self._retry_at_s = None
        self._heard_s = None
        self.on_open()

    def on_open(self):
        """Hook: reset parsers after (re)opening."""

    def close(self):
        port, self.port = self.port, None
        if port is not None:
            try:
                port.close()
            except (OSError, serial.SerialException):
                pass

    def _lost(self, exc, t_s):
        log.warning("%s port %s lost: %s; retrying every %.1f s", self.name, self.url, exc, self.reconnect_interval_s)
        self.close()
        self._retry_at_s = t_s + self.reconnect_interval_s

    def _ready(self, t_s):
        """True when the port is open, reopening it if it was lost and the retry time has come."""
        if self.port is not None:
            return True
        if self._retry_at_s is None or t_s < self._retry_at_s:
            return False
        from opensteady.host.link import LinkError

        try:
            self.open()
        except LinkError as exc:
            log.debug("reopen %s failed: %s", self.url, exc)
            self._retry_at_s = t_s + self.reconnect_interval_s
            return False
        self.reconnects += 1
        log.info("%s port %s re-opened", self.name, self.url)
        return True

    def write(self, data, t_s):
        self._now_s = t_s
        if not self._ready(t_s):
            return 0
        try:
            self.port.write(data)
        except (OSError, serial.SerialException) as exc:
            self._lost(exc, t_s)
            return 0
        return len(data)

    def read(self, t_s):
        self._now_s = t_s
        if not self._ready(t_s):
            return b""
        try:
            waiting = self.port.in_waiting
            return self.port.read(waiting) if waiting else b""
        except (OSError, serial.SerialException) as exc:
            self._lost(exc, t_s)
            return b""
