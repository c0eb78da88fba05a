"""OpenSteady firmware driver: the wire protocol through host.link.Link.

On open it handshakes (Link does) and asks the firmware for its mode
(``mode``, track by default); setpoints go out as MSG_SETPOINT with the
flags SetpointCommand.to_protocol() chooses. Telemetry arrives in 0.01 deg
units and is converted to degrees. The firmware refuses a mode until its
gyro calibration is done, and a reconnected board boots in another mode, so
while telemetry reports any other mode the request is repeated every
``mode_retry_s``.

``link`` may be any object with Link's interface; the simulated rig passes a
real Link whose port carries the bytes over its simulated UART. Otherwise
the Link is built here on ``clock`` (its heartbeats, handshake deadline and
reconnections run on it; tests pass a fake clock).
"""

import time

from opensteady.firmware import protocol as p
from opensteady.host.mount.backend import MountBackend, silence_problem


def telemetry_from_fields(fields):
    """MSG_TELEMETRY fields (cdeg, cdps) -> the backend telemetry dict in degrees."""
    out = {
        "yaw_deg": fields["yaw_cdeg"] / 100.0,
        "pitch_deg": fields["pitch_cdeg"] / 100.0,
        "roll_deg": fields["roll_cdeg"] / 100.0,
        "yaw_rate_dps": fields["yaw_rate_cdps"] / 100.0,
        "pitch_rate_dps": fields["pitch_rate_cdps"] / 100.0,
        "yaw_joint_deg": fields["yaw_joint_cdeg"] / 100.0,
        "pitch_joint_deg": fields["pitch_joint_cdeg"] / 100.0,
        "roll_joint_deg": fields["roll_joint_cdeg"] / 100.0,
        "mode": p.MODE_NAMES[fields["mode"]] if fields["mode"] < len(p.MODE_NAMES) else fields["mode"],
        "state_flags": fields["state_flags"],
        "fault_flags": fields["fault_flags"],
        "loop_time_us": fields["loop_time_us"],
        "device_time_us": fields["t_us"],  # when the firmware measured this attitude (ticks_us)
    }
    return out


class OpenSteadyBackend(MountBackend):
    name = "opensteady"
    device_time_wrap_us = 2**30  # MicroPython's ticks_us period (firmware.fixmath.TICKS_MASK + 1)

    @property
    def attitude_delay_s(self):
        """The firmware's IMU filter delay from VERSION (protocol v5 ``imu_delay_us``); 0 before the handshake."""
        version = getattr(self.link, "version", None) or {}
        return version.get("imu_delay_us", 0) * 1e-6

    def __init__(self, url, baud=115200, handshake=True, link=None, mode="track", mode_retry_s=0.5,
                 clock=time.monotonic, alive_s=1.0):
        if link is None:
            from opensteady.host.link import Link

            link = Link(url, baud=baud, handshake=handshake, reconnect=True, clock=clock)
        if mode not in p.MODE_NAMES:
            raise ValueError("mode %r: unknown, expected one of %s" % (mode, ", ".join(p.MODE_NAMES)))
        self.link = link
        self.mode = mode
        self._mode_id = p.MODE_NAMES.index(mode)
        self.mode_retry_s = mode_retry_s
        self.telemetry = None
        self.faults = []  # FAULT messages received, newest last
        self.telemetry_frames = 0
        self.fault_flags_seen = 0  # every fault bit seen in telemetry or a FAULT message
        self.mode_reached = False  # telemetry has reported ``mode`` (acknowledged, or the board's boot mode)
        self._reconnects_seen = 0
        self.alive_s = alive_s
        self._heard_s = None  # when the firmware last sent a valid frame
        self._now_s = None
        self._tail_at_heard = b""
        self._mode_retry_at_s = None
        self._safe = False
        self.light_level = None  # the level last asked for: sent again after a reconnect (the board boots dark)
        self.light_status = None  # the board's ACK to the last LIGHT: "ok", "not_fitted", "out_of_range"
        self._light_seq = -1

    @property
    def connected(self):
        """The link is up and the firmware sent a valid frame within ``alive_s`` (telemetry comes at 50 Hz)."""
        return (self.link.connected and self._heard_s is not None
                and self._now_s - self._heard_s <= self.alive_s)

    def health_problem(self):
        from opensteady.host.link import describe_foreign_bytes

        problem = silence_problem(self.name, self.link.connected, self._heard_s, self._now_s, self.alive_s)
        tail = getattr(self.link, "rx_tail", b"")
        if problem and tail and tail != self._tail_at_heard:
            problem += ": " + describe_foreign_bytes(tail)  # e.g. it fell back to the MicroPython REPL
        return problem

    def open(self):
        self.link.open()
        self.link.send(p.MSG_MODE, self._mode_id)
        self._reconnects_seen = self.link.reconnects

    def close(self):
        self.link.close()

    def _after_reconnect(self):
        if self.link.reconnects != self._reconnects_seen and self.link.connected:
            self._reconnects_seen = self.link.reconnects
            self.link.send(p.MSG_MODE, self._mode_id)
            if self.light_level:
                self._light_seq = self.link.send(p.MSG_LIGHT, self.light_level)

    def set_light(self, level):
        self.light_level = level
        self._light_seq = self.link.send(p.MSG_LIGHT, level)
        return self._light_seq >= 0

    def send_setpoint(self, cmd, t_s):
        flags, yaw, pitch, roll = cmd.to_protocol()
        seq = self.link.send_setpoint(flags, yaw, pitch, roll)
        self._after_reconnect()
        return 0 if seq < 0 else p.OVERHEAD + p.SIZES[p.MSG_SETPOINT]

    def poll(self, t_s):
        self._now_s = t_s
        for msg_id, fields, rx_s in self.link.poll_stamped(t_s):
            self._heard_s = t_s
            self._tail_at_heard = getattr(self.link, "rx_tail", b"")
            if msg_id == p.MSG_TELEMETRY:
                if fields["mode"] >= len(p.MODE_NAMES):
                    self.reject("telemetry", "unknown mode %d" % fields["mode"])
                elif self.accept_telemetry(telemetry_from_fields(fields), arrival_s=rx_s):
                    self.telemetry_frames += 1
                    self.fault_flags_seen |= fields["fault_flags"]
                    if self.telemetry["mode"] == self.mode:
                        self.mode_reached = True
            elif msg_id == p.MSG_ACK and fields["msg_id"] == p.MSG_LIGHT and fields["seq"] == self._light_seq:
                status = fields["status"]
                self.light_status = p.NACK_NAMES[status] if status < len(p.NACK_NAMES) else status
            elif msg_id == p.MSG_FAULT:
                self.faults.append(fields)
                self.fault_flags_seen |= fields["fault_flags"]
        self._after_reconnect()
        if not self.link.connected:
            self.telemetry = None
        elif self.telemetry is not None and self.telemetry["mode"] != self.mode and not self._safe:
            if self._mode_retry_at_s is None or t_s >= self._mode_retry_at_s:
                self.link.send(p.MSG_MODE, self._mode_id)
                self._mode_retry_at_s = t_s + self.mode_retry_s
        return self.telemetry

    def make_safe(self, t_s, motors_off=False):
        self._safe = True
        flags = (p.SP_YAW_IS_RATE | p.SP_PITCH_IS_RATE | p.SP_ROLL_IS_RATE
                 | p.SP_YAW_IN_EARTH_FRAME | p.SP_PITCH_IN_EARTH_FRAME | p.SP_ROLL_IN_EARTH_FRAME)
        self.link.send_setpoint(flags, 0, 0, 0)  # stop turning; MODE_LOCK then holds the attitude
        self.link.send(p.MSG_MODE, p.MODE_OFF if motors_off else p.MODE_LOCK)
        if self.light_level:
            self.link.send(p.MSG_LIGHT, p.LIGHT_OFF)  # a light this host switched on goes off with it
