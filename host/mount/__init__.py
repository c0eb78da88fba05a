"""Gimbal output: one frontend, one backend per protocol (ArduPilot AP_Mount's split).

The frontend :class:`Mount` is what the application talks to. It serialises
access to the backend (the watchdog thread and the main loop share it),
counts what was sent, keeps the last telemetry, and stops the gimbal when
setpoints stop arriving (a stalled detector) or the program exits.

Backends, chosen with ``--gimbal``:

========== =============================================== =========================
name       protocol                                        module
========== =============================================== =========================
opensteady OpenSteady wire protocol via host.link.Link     host.mount.opensteady
simplebgc  SimpleBGC Serial API v2                         host.mount.simplebgc
mavlink    MAVLink Gimbal Protocol v2 (pymavlink)          host.mount.mavlink
none       nothing (dry run)                               host.mount.backend
========== =============================================== =========================

``--sim`` (host/simrig.py) uses the opensteady backend over the simulated
rig's serial port; ``--gimbal sim`` names that choice.

    mount = Mount(create_backend("simplebgc", "/dev/ttyUSB0"))
    mount.open()
    mount.send(setpoint, now_s)
    telemetry = mount.poll(now_s)
    mount.close(now_s)
"""

import logging
import threading
import time

from opensteady.host.attitude_history import AttitudeHistory
from opensteady.host.framing import STATE_STALLED, SetpointCommand
from opensteady.host.mount.backend import MountBackend

log = logging.getLogger(__name__)

GIMBALS = ("opensteady", "simplebgc", "mavlink", "sim", "none")


def create_backend(kind, port=None, baud=115200, **options):
    """Build the backend for ``--gimbal kind``; raises ValueError for a bad kind or a missing port."""
    if kind not in GIMBALS:
        raise ValueError("unknown gimbal %r: choose one of %s" % (kind, ", ".join(GIMBALS)))
    if kind in ("opensteady", "simplebgc", "mavlink") and not port:
        raise ValueError("--gimbal %s needs --port (a device such as /dev/ttyACM0, or a pyserial URL)" % kind)
    if kind == "none":
        return MountBackend()
    if kind == "opensteady":
        from opensteady.host.mount.opensteady import OpenSteadyBackend

        return OpenSteadyBackend(port, baud=baud, **options)
    if kind == "simplebgc":
        from opensteady.host.mount.simplebgc import SimpleBGCBackend

        return SimpleBGCBackend(port, baud=baud, **options)
    if kind == "mavlink":
        from opensteady.host.mount.mavlink import MavlinkBackend

        return MavlinkBackend(port, baud=baud, **options)
    raise ValueError("--gimbal sim is the simulated rig's port, which comes with its camera: use --sim")


class Mount:
    """The frontend: thread-safe access, a stall watchdog and a safe shutdown.

    Every accepted telemetry sample goes into ``history`` (host.attitude_history) with its arrival time (when
    its frame began to arrive where the driver stamps it, as the opensteady one does; else the poll's time);
    :meth:`telemetry_at` gives the pipeline the attitude at a frame's capture time while telemetry is
    fresh (newest sample at most ``telemetry_max_age_s`` old), and None after that.
    """

    def __init__(self, backend, stall_s=0.5, telemetry_max_age_s=0.25):
        self.backend = backend
        self.stall_s = stall_s
        self.history = AttitudeHistory(max_age_s=telemetry_max_age_s)
        self.telemetry = None
        self.setpoints_sent = 0
        self.bytes_written = 0
        self.stall_stops = 0
        self.last_setpoint = None
        self.light_level = None  # the fill light level last asked for
        self._last_send_s = None
        self._stopped = False
        self._lock = threading.Lock()
        self._watchdog = None
        self._watchdog_stop = threading.Event()

    @property
    def name(self):
        return self.backend.name

    @property
    def connected(self):
        return self.backend.connected

    def open(self):
        with self._lock:
            self.backend.open()

    def set_light(self, level):
        """Ask the gimbal for fill light ``level`` (0 off, 1..3); False when its driver has no light."""
        with self._lock:
            self.light_level = level
            return self.backend.set_light(level)

    @property
    def light_status(self):
        """The gimbal's answer to the last light request: "ok", "not_fitted", ..., None before one (or no light)."""
        return self.backend.light_status

    def send(self, cmd, now_s):
        """Send a setpoint; returns the bytes written (0 when the port is down or for ``none``)."""
        with self._lock:
            n = self.backend.send_setpoint(cmd, now_s)
            self.last_setpoint = cmd
            self._last_send_s = now_s
            self._stopped = False
            self.setpoints_sent += 1
            self.bytes_written += n
            return n

    @property
    def rejected(self):
        """Device messages the backend refused at the boundary (NaN, inf, implausible values)."""
        return self.backend.rejected

    @property
    def device_problem(self):
        """None, or one line saying what is wrong with the device (for the HUD and JSON status): silent for
        longer than its ``alive_s``, talking something else, or sending refused values."""
        problem = self.backend.health_problem()
        if problem is not None or not self.backend.rejected:
            return problem
        return "%d bad messages from the %s gimbal ignored (last: %s)" % (
            self.backend.rejected, self.backend.name, self.backend.last_rejection)

    def poll(self, now_s):
        """The newest accepted telemetry. Never raises: a driver that chokes on what the device sent
        counts it as a rejected message and keeps the last good telemetry."""
        with self._lock:
            try:
                self.telemetry = self.backend.poll(now_s)
            except Exception as exc:  # noqa: BLE001 - a device must not be able to crash the app
                log.debug("%s driver failed on device input", self.backend.name, exc_info=True)
                self.backend.reject("input", "the driver failed on it: %s: %s" % (type(exc).__name__, exc))
            samples = self.backend.take_samples()
            if samples:
                wrap_us = self.backend.device_time_wrap_us
                delay_s = self.backend.attitude_delay_s
                for sample, arrival_s in samples:
                    self.history.add(sample, now_s if arrival_s is None else arrival_s,
                                     sample.get("device_time_us"), wrap_us, delay_s)
            if self.telemetry is None:
                self.history.clear()  # the link went down: what came before says nothing about now
            return self.telemetry

    def telemetry_at(self, t_s, now_s):
        """The gimbal's telemetry at host time ``t_s`` (a frame's capture time; None: the newest), with its
        angles interpolated between the samples around it; None unless telemetry is fresh at ``now_s``."""
        with self._lock:
            return self.history.at(t_s, now_s)

    def check_stall(self, now_s):
        """Stop the gimbal once if no setpoint came for ``stall_s``; returns True when it did."""
        with self._lock:
            if self._last_send_s is None or self._stopped or now_s - self._last_send_s < self.stall_s:
                return False
            roll = self.last_setpoint.roll_deg if self.last_setpoint is not None else 0.0
            self.backend.send_setpoint(SetpointCommand(roll_deg=roll, state=STATE_STALLED), now_s)
            self._stopped = True
            self.stall_stops += 1
        log.warning("no setpoint for %.2f s (detector stalled?): gimbal stopped", now_s - self._last_send_s)
        return True

    def start_watchdog(self, clock=time.monotonic, period_s=0.05):
        """Run check_stall on ``clock`` in a daemon thread (the main loop may be what stalls)."""
        def loop():
            while not self._watchdog_stop.wait(period_s):
                try:
                    self.check_stall(clock())
                except Exception:  # the watchdog must outlive any driver error
                    log.exception("mount watchdog")

        self._watchdog = threading.Thread(target=loop, name="mount-watchdog", daemon=True)
        self._watchdog.start()

    def close(self, now_s, motors_off=False):
        """Stop motion (and optionally the motors), then close the port. Never raises."""
        self._watchdog_stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=1.0)
        with self._lock:
            try:
                self.backend.make_safe(now_s, motors_off=motors_off)
            except Exception as exc:  # closing must go on whatever the port did
                log.warning("could not put the %s gimbal in a safe state: %s", self.backend.name, exc)
            self.backend.close()
