"""The naive baseline tracker: the pan-tilt law of countless hobby face-tracking projects.

It exists only to measure OpenSteady's tracker against, in the same run, on
the same frames. Per frame it takes the FIRST face the detector lists (no
identity, no prediction), and if the face is more than ``deadband_px`` from
the frame centre it nudges the pan/tilt angle by ``step_deg_per_px`` times
the pixel error (P-only, no I or D, no notion of field of view, no rate
limit). The angles go out as absolute earth-frame angle setpoints, as a
hobby sketch writes servo positions.

    base = BaselineTracker(BaselineConfig())
    flags, yaw_cdeg, pitch_cdeg, roll_cdeg = base.step(detections, frame_width, frame_height)
"""

from dataclasses import dataclass

from opensteady.firmware import protocol


@dataclass(frozen=True)
class BaselineConfig:
    deadband_px: float = 30.0  # the usual "if abs(err) > 30" in a 640 px frame
    step_deg_per_px: float = 0.02  # 100 px off -> move 2 deg this frame

    def validate(self):
        if self.deadband_px < 0 or self.step_deg_per_px <= 0:
            raise ValueError("baseline: deadband_px must be >= 0 and step_deg_per_px > 0, got %r" % (self,))
        return self


class BaselineTracker:
    def __init__(self, config=None):
        self.config = (config or BaselineConfig()).validate()
        self.yaw_deg = 0.0
        self.pitch_deg = 0.0
        self.locked = False

    def step(self, detections, width_px, height_px):
        """One frame: returns MSG_SETPOINT fields (flags, yaw, pitch, roll) as ints."""
        c = self.config
        self.locked = bool(detections.faces)
        if self.locked:
            face = detections.faces[0].box  # the first face found, whoever it is
            err_x = (face.cx - 0.5) * width_px
            err_y = (face.cy - 0.5) * height_px
            if abs(err_x) > c.deadband_px:
                self.yaw_deg += c.step_deg_per_px * err_x
            if abs(err_y) > c.deadband_px:
                self.pitch_deg -= c.step_deg_per_px * err_y  # image y is down, pitch is up
        flags = protocol.SP_YAW_IN_EARTH_FRAME | protocol.SP_PITCH_IN_EARTH_FRAME | protocol.SP_ROLL_IN_EARTH_FRAME
        return (flags, protocol.sat_i16(self.yaw_deg * 100), protocol.sat_i16(self.pitch_deg * 100), 0)
