"""Calibration point and side-camera mapping.

The calibration point (the iSteady V2 idea) is where in the frame the subject
is held: the centre, or a rule-of-thirds point. Coordinates are normalised,
origin top-left, x right, y down.

A tracking camera mounted beside the recording camera sees the subject at a
different place and scale. :class:`CameraMapping` maps tracking-camera
coordinates into recording-camera coordinates (per axis: scale about the
centre, then offset), and :func:`fit_mapping` estimates it from pairs of the
same subject position seen in both cameras.

    point = parse_point("top-third")          # (0.5, 0.333)
    mapping = CameraMapping(offset_x=-0.05, scale_x=0.8)
    x_rec, y_rec = mapping.apply(0.6, 0.4)
"""

from dataclasses import dataclass

PRESETS = {
    "centre": (0.5, 0.5),
    "top-third": (0.5, 1 / 3),
    "bottom-third": (0.5, 2 / 3),
    "left-third": (1 / 3, 0.5),
    "right-third": (2 / 3, 0.5),
    "top-left-third": (1 / 3, 1 / 3),
    "top-right-third": (2 / 3, 1 / 3),
    "bottom-left-third": (1 / 3, 2 / 3),
    "bottom-right-third": (2 / 3, 2 / 3),
}


def parse_point(text):
    """A preset name or "X,Y" (normalised, 0..1) -> (x, y). Raises ValueError naming the problem."""
    if isinstance(text, (tuple, list)):
        values = list(text)
    else:
        name = str(text).strip().lower().replace("_", "-").replace("center", "centre")
        if name in PRESETS:
            return PRESETS[name]
        try:
            values = [float(v) for v in name.split(",")]
        except ValueError:
            raise ValueError(
                "calibration point %r is neither a preset (%s) nor 'X,Y'" % (text, ", ".join(PRESETS))
            ) from None
    if len(values) != 2:
        raise ValueError("calibration point %r must have exactly two coordinates" % (text,))
    x, y = float(values[0]), float(values[1])
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError("calibration point %r must lie inside the frame (0..1 on both axes)" % (text,))
    return (x, y)


@dataclass(frozen=True)
class CameraMapping:
    """Tracking-camera -> recording-camera coordinates: ``0.5 + (u - 0.5) * scale + offset``."""

    offset_x: float = 0.0
    offset_y: float = 0.0
    scale_x: float = 1.0
    scale_y: float = 1.0

    def validate(self):
        for key in ("scale_x", "scale_y"):
            if not getattr(self, key) > 0:
                raise ValueError("camera_mapping.%s = %r: must be positive" % (key, getattr(self, key)))
        for key in ("offset_x", "offset_y"):
            if not -1.0 <= getattr(self, key) <= 1.0:
                raise ValueError("camera_mapping.%s = %r: must be between -1 and 1" % (key, getattr(self, key)))
        return self

    @property
    def is_identity(self):
        return self == CameraMapping()

    def apply(self, x, y):
        return (0.5 + (x - 0.5) * self.scale_x + self.offset_x, 0.5 + (y - 0.5) * self.scale_y + self.offset_y)

    def apply_box(self, box):
        """Map an (x, y, w, h) box; returns the mapped (x, y, w, h)."""
        x, y, w, h = box
        mx, my = self.apply(x, y)
        return (mx, my, w * self.scale_x, h * self.scale_y)


def _fit_axis(us, vs):
    n = len(us)
    mu = sum(us) / n
    mv = sum(vs) / n
    var = sum((u - mu) ** 2 for u in us)
    if var < 1e-9:
        raise ValueError("calibration points must differ along each axis to fit a scale")
    scale = sum((u - mu) * (v - mv) for u, v in zip(us, vs)) / var
    # v = 0.5 + (u - 0.5) * scale + offset  =>  offset = mv - 0.5 - (mu - 0.5) * scale
    return scale, mv - 0.5 - (mu - 0.5) * scale


def fit_mapping(pairs):
    """Least-squares CameraMapping from [((x_track, y_track), (x_rec, y_rec)), ...], at least 2 pairs."""
    if len(pairs) < 2:
        raise ValueError("need at least 2 point pairs to fit a camera mapping, got %d" % len(pairs))
    sx, ox = _fit_axis([p[0][0] for p in pairs], [p[1][0] for p in pairs])
    sy, oy = _fit_axis([p[0][1] for p in pairs], [p[1][1] for p in pairs])
    return CameraMapping(offset_x=ox, offset_y=oy, scale_x=sx, scale_y=sy).validate()
