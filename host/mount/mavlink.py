"""MAVLink Gimbal Protocol v2 driver (pymavlink, MAVLink 2 framing).

Out: GIMBAL_MANAGER_SET_PITCHYAW (287; rad, rad/s, NaN = ignore) or, with
``message="attitude"``, GIMBAL_MANAGER_SET_ATTITUDE (282; quaternion +
angular velocity). A HEARTBEAT (MAV_TYPE_ONBOARD_CONTROLLER) goes out every
second. In: GIMBAL_DEVICE_ATTITUDE_STATUS (285), turned into yaw/pitch/roll
degrees, and the gimbal's HEARTBEAT. A status with a non-finite or far from
unit quaternion, or inf rates, is refused and counted (``rejected``); NaN
rates mean "unknown" in the protocol and are left out.

MAVLink's gimbal convention is the same as OpenSteady's: yaw positive to
the right, pitch positive up. Rates are sent in the earth frame
(YAW_LOCK | YAW_IN_EARTH_FRAME); a recentring yaw angle in the vehicle frame.
SET_PITCHYAW has no roll: the gimbal keeps its own horizon, so portrait
(roll 90) needs ``message="attitude"`` while recentring, or the gimbal's
own setting.

The port is a pyserial URL (a serial device, ``socket://``, ``loop://``).
"""

import logging
import math

from opensteady.host.mount.backend import SerialBackend

log = logging.getLogger(__name__)

NAN = float("nan")
QUATERNION_NORM_TOLERANCE = 0.1  # a float32 unit quaternion is within 1e-6; anything far off is not an attitude
MAV_COMP_ID_GIMBAL = 154  # the component id a gimbal device answers on (MAVLink common.xml)


def _mavlink():
    from pymavlink.dialects.v20 import common  # optional dependency: opensteady[mavlink]

    return common


def euler_from_quaternion(q):
    """(w, x, y, z) -> (roll, pitch, yaw) radians, aerospace Z-Y-X in an FRD frame."""
    w, x, y, z = q
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2.0 * (w * y - z * x))))
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return roll, pitch, yaw


def quaternion_from_euler(roll, pitch, yaw):
    """(roll, pitch, yaw) radians -> (w, x, y, z), the inverse of euler_from_quaternion."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    )


class MavlinkBackend(SerialBackend):
    """A MAVLink gimbal manager (an autopilot, or a gimbal that is its own manager)."""

    name = "mavlink"

    def __init__(self, url, baud=115200, message="pitchyaw", source_system=1, source_component=None,
                 target_system=1, target_component=MAV_COMP_ID_GIMBAL, gimbal_device_id=0, heartbeat_interval_s=1.0,
                 reconnect_interval_s=1.0, alive_s=1.0):
        super().__init__(url, baud, reconnect_interval_s, alive_s)
        if message not in ("pitchyaw", "attitude"):
            raise ValueError("mavlink.message = %r: must be 'pitchyaw' or 'attitude'" % (message,))
        m = _mavlink()
        self.m = m
        self.message = message
        self.target_system = target_system
        self.target_component = target_component
        self.gimbal_device_id = gimbal_device_id
        self.heartbeat_interval_s = heartbeat_interval_s
        self.mav = m.MAVLink(None, srcSystem=source_system,
                             srcComponent=m.MAV_COMP_ID_ONBOARD_COMPUTER if source_component is None else source_component)
        self.mav.robust_parsing = True  # bad bytes become BAD_DATA messages, never exceptions
        self.telemetry = None
        self.gimbal_heartbeat_s = None
        self._next_heartbeat_s = None

    def on_open(self):
        self.mav.buf = bytearray()
        self.mav.buf_index = 0

    def _send(self, msg, t_s):
        return self.write(msg.pack(self.mav), t_s)

    def encode_setpoint(self, cmd):
        """The MAVLink message for a SetpointCommand (not yet packed)."""
        m = self.m
        flags = m.GIMBAL_MANAGER_FLAGS_ROLL_LOCK | m.GIMBAL_MANAGER_FLAGS_PITCH_LOCK
        if cmd.yaw_deg is None:
            flags |= m.GIMBAL_MANAGER_FLAGS_YAW_LOCK | m.GIMBAL_MANAGER_FLAGS_YAW_IN_EARTH_FRAME
        else:
            flags |= m.GIMBAL_MANAGER_FLAGS_YAW_IN_VEHICLE_FRAME
        if self.message == "pitchyaw":
            pitch = NAN if cmd.pitch_deg is None else math.radians(cmd.pitch_deg)
            yaw = NAN if cmd.yaw_deg is None else math.radians(cmd.yaw_deg)
            pitch_rate = NAN if cmd.pitch_deg is not None else math.radians(cmd.pitch_rate_dps)
            yaw_rate = NAN if cmd.yaw_deg is not None else math.radians(cmd.yaw_rate_dps)
            return self.mav.gimbal_manager_set_pitchyaw_encode(
                self.target_system, self.target_component, flags, self.gimbal_device_id, pitch, yaw, pitch_rate, yaw_rate)
        if cmd.yaw_deg is not None or cmd.pitch_deg is not None:
            q = quaternion_from_euler(math.radians(cmd.roll_deg), math.radians(cmd.pitch_deg or 0.0),
                                      math.radians(cmd.yaw_deg or 0.0))
            rates = (NAN, NAN, NAN)
        else:
            q = (NAN, NAN, NAN, NAN)  # attitude ignored: rate control
            rates = (0.0, math.radians(cmd.pitch_rate_dps), math.radians(cmd.yaw_rate_dps))
        return self.mav.gimbal_manager_set_attitude_encode(
            self.target_system, self.target_component, flags, self.gimbal_device_id, q, *rates)

    def send_setpoint(self, cmd, t_s):
        return self._send(self.encode_setpoint(cmd), t_s)

    def heartbeat(self):
        m = self.m
        return self.mav.heartbeat_encode(m.MAV_TYPE_ONBOARD_CONTROLLER, m.MAV_AUTOPILOT_INVALID, 0, 0, m.MAV_STATE_ACTIVE)

    device_time_wrap_us = 2**32 * 1000  # time_boot_ms is a uint32

    def poll(self, t_s):
        if self._next_heartbeat_s is None or t_s >= self._next_heartbeat_s:
            self._send(self.heartbeat(), t_s)
            self._next_heartbeat_s = t_s + self.heartbeat_interval_s
        data = self.read(t_s)
        if data:
            for msg in self.mav.parse_buffer(data) or ():
                self._handle(msg, t_s)
        return self.telemetry

    def _handle(self, msg, t_s):
        kind = msg.get_type()
        if kind != "BAD_DATA":
            self.heard(t_s)
        if kind == "GIMBAL_DEVICE_ATTITUDE_STATUS":
            q = msg.q
            if not all(math.isfinite(v) for v in q):
                self.reject("attitude status", "quaternion %r is not finite" % (list(q),))
                return
            norm = math.sqrt(sum(v * v for v in q))
            if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
                self.reject("attitude status", "quaternion norm %.4g, not 1" % norm)
                return
            roll, pitch, yaw = euler_from_quaternion([v / norm for v in q])
            telemetry = {
                "roll_deg": math.degrees(roll),
                "pitch_deg": math.degrees(pitch),
                "yaw_deg": math.degrees(yaw),
                "flags": msg.flags,
                "failure_flags": msg.failure_flags,
                "device_time_us": msg.time_boot_ms * 1000,
            }
            # NaN angular velocity means "unknown" in Gimbal Protocol v2: leave the rate out, keep the attitude
            for key, value in (("yaw_rate_dps", msg.angular_velocity_z), ("pitch_rate_dps", msg.angular_velocity_y)):
                if not math.isnan(value):
                    telemetry[key] = math.degrees(value)
            self.accept_telemetry(telemetry, "attitude status")
        elif kind == "HEARTBEAT" and msg.type == self.m.MAV_TYPE_GIMBAL:
            self.gimbal_heartbeat_s = t_s
        elif kind == "BAD_DATA":
            log.debug("MAVLink bad data: %s", msg.reason)

    def make_safe(self, t_s, motors_off=False):
        # Zero rates: the gimbal holds its attitude. Gimbal Protocol v2 has no motors-off message.
        from opensteady.host.framing import SetpointCommand

        self.send_setpoint(SetpointCommand(), t_s)
