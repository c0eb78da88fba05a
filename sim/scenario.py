"""Scenarios: TOML files in ``sim/scenarios/`` turned into a validated :class:`Scenario`.

    sc = load_scenario("track-crossing")          # a bundled name, or a path to a .toml file
    sc = load_scenario("track-crossing", overrides={"seconds": 4.0})
    names = scenario_names()

The format (every key optional except ``name``; defaults in the dataclasses
below, documented in docs/sim.md)::

    name = "track-crossing"
    description = "..."
    seconds = 10.0          # simulated time, warm-up included
    warmup_s = 2.0          # boot, gyro calibration, lock-on; metrics skip it
    mode = "track"          # firmware mode after warm-up: lock | pan_follow | follow | track
    tracker = "opensteady"  # or "baseline" (the naive pan-tilt law in sim/baseline.py)

    [handle]                # sim/disturbance.py
    profile = "tremor"      # still | tremor | walking | running | pan

    [camera]                # sim/camera.py; fps 0 = no frames, no vision
    hfov_deg = 70.0
    fps = 30.0
    latency_s = 0.030       # frame time -> setpoint on the wire

    [link]                  # sim/link.py, both directions
    baud = 115200

    [[subjects]]            # photo billboards
    name = "subject"
    image = "astronaut"     # "astronaut", "astronaut-mirrored" or a file path
    target = true           # the person the metrics follow
    # [t_s, azimuth_deg (positive right), distance_m, height_m], linear in between
    path = [[0, 0, 2.0, 0.1], [3, 0, 2.0, 0.1], [5, 60, 2.0, 0.1]]
    hidden = [[4.0, 5.0]]   # intervals when something covers the subject

    [[gestures]]            # injected through the host pipeline's gesture path
    t_s = 4.0
    gesture = "open_palm"

    [sensor]                # sim/angle_sensor.py: a rotor-angle sensor on every motor
    kind = "as5048a"        # none | as5600 | as5048a (the firmware's <axis>_drive = 1 uses it)

    [phone]                 # the payload: a heavier or lighter phone than the default
    mass_kg = 0.195

    [light]                 # sim/camera.py LightParams: room light, the gimbal's fill light, sensor noise
    ambient = 0.15          # 1 = the photos as taken
    fill_at_1m = 1.0        # what the fill light at full duty adds 1 m away (falls off with distance^2)
    noise_dn = 3.0          # read noise, 8-bit levels
    level = 3               # the fill light level the host asks for at the start (0 off, 1..3)

    [firmware]              # firmware config keys over sim/board_config.py's tuning
    pitch_rate_kd_ms = 25.0
"""

import os
from dataclasses import dataclass, field, fields, replace

try:
    import tomllib
except ImportError:  # Python < 3.11 (pyproject installs tomli there)
    import tomli as tomllib

from opensteady.sim.angle_sensor import AngleSensorParams
from opensteady.sim.camera import CameraParams, LightParams
from opensteady.sim.disturbance import HandleMotion
from opensteady.sim.imu import ImuParams
from opensteady.sim.link import LinkParams
from opensteady.sim.motor import BldcParams

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
MODES = ("lock", "pan_follow", "follow", "track")
TRACKERS = ("opensteady", "baseline")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, key and reason."""


@dataclass(frozen=True)
class VisionParams:
    fps: float = 30.0
    latency_s: float = 0.030

    def validate(self):
        if not 0 <= self.fps <= 240:
            raise ValueError("camera.fps = %r: must be 0 (no vision) .. 240" % self.fps)
        if not 0 <= self.latency_s <= 1.0:
            raise ValueError("camera.latency_s = %r: must be 0..1 s" % self.latency_s)
        return self


@dataclass(frozen=True)
class Subject:
    name: str = "subject"
    image: str = "astronaut"
    width_m: float = 0.0  # the photo's width in the world; 0 scales it so the face is 0.16 m wide
    target: bool = True
    path: tuple = ((0.0, 0.0, 2.0, 0.1),)
    hidden: tuple = ()

    def validate(self, where):
        if not self.width_m >= 0:
            raise ValueError("%s.width_m = %r: must be positive (or 0 for a 0.16 m face)" % (where, self.width_m))
        if not self.path:
            raise ValueError("%s.path: needs at least one [t_s, azimuth_deg, distance_m, height_m] point" % where)
        last_t = None
        for point in self.path:
            if len(point) != 4:
                raise ValueError("%s.path point %r: expected [t_s, azimuth_deg, distance_m, height_m]" % (where, point))
            t, _az, dist, _h = point
            if last_t is not None and t <= last_t:
                raise ValueError("%s.path: times must increase, got %r after %r" % (where, t, last_t))
            if not dist > 0.2:
                raise ValueError("%s.path point %r: distance_m must be more than 0.2 m" % (where, point))
            last_t = t
        for interval in self.hidden:
            if len(interval) != 2 or not interval[0] < interval[1]:
                raise ValueError("%s.hidden %r: expected [start_s, end_s] with start < end" % (where, interval))
        return self

    def at(self, t_s):
        """(azimuth_deg, distance_m, height_m) at ``t_s``: linear between path points, held outside."""
        path = self.path
        if t_s <= path[0][0]:
            return tuple(path[0][1:])
        for a, b in zip(path, path[1:]):
            if t_s <= b[0]:
                w = (t_s - a[0]) / (b[0] - a[0])
                return tuple(a[k] + w * (b[k] - a[k]) for k in (1, 2, 3))
        return tuple(path[-1][1:])

    def is_hidden(self, t_s):
        return any(start <= t_s < end for start, end in self.hidden)


@dataclass(frozen=True)
class PhoneParams:
    """The phone in the clamp: its mass (same size and place; the gimbal's range is about 0.13-0.29 kg)."""

    mass_kg: float = 0.195

    def validate(self):
        if not 0.05 <= self.mass_kg <= 0.5:
            raise ValueError("phone.mass_kg = %r: must be 0.05..0.5 kg" % self.mass_kg)
        return self


@dataclass(frozen=True)
class GestureEvent:
    t_s: float
    gesture: str


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    seconds: float = 10.0
    warmup_s: float = 2.0
    mode: str = "lock"
    tracker: str = "opensteady"
    handle: HandleMotion = field(default_factory=HandleMotion)
    camera: CameraParams = field(default_factory=CameraParams)
    vision: VisionParams = field(default_factory=VisionParams)
    link: LinkParams = field(default_factory=LinkParams)
    imu: ImuParams = field(default_factory=ImuParams)
    motor: BldcParams = field(default_factory=BldcParams)
    sensor: AngleSensorParams = field(default_factory=AngleSensorParams)
    phone: PhoneParams = field(default_factory=PhoneParams)
    light: LightParams = field(default_factory=LightParams)
    subjects: tuple = ()
    gestures: tuple = ()
    firmware: tuple = ()  # (config key name, value) pairs over sim/board_config.py
    source: str = ""

    def validate(self):
        if not self.seconds > 0:
            raise ValueError("seconds = %r: must be positive" % self.seconds)
        if not 0 <= self.warmup_s < self.seconds:
            raise ValueError("warmup_s = %r: must be at least 0 and less than seconds (%r)"
                             % (self.warmup_s, self.seconds))
        if self.mode not in MODES:
            raise ValueError("mode = %r: unknown, expected one of %s" % (self.mode, ", ".join(MODES)))
        if self.tracker not in TRACKERS:
            raise ValueError("tracker = %r: unknown, expected one of %s" % (self.tracker, ", ".join(TRACKERS)))
        for part in (self.handle, self.camera, self.vision, self.link, self.imu, self.motor, self.sensor, self.phone,
                     self.light):
            part.validate()
        for k, s in enumerate(self.subjects):
            s.validate("subjects[%d]" % k)
        if sum(1 for s in self.subjects if s.target) > 1:
            raise ValueError("subjects: at most one may have target = true")
        from opensteady.sim.board_config import board_config

        board_config(self.firmware)  # names and ranges checked by the firmware's own table
        if self.mode == "track" and (self.vision.fps <= 0 or not self.subjects):
            raise ValueError("mode = 'track' needs camera.fps > 0 and at least one [[subjects]]")
        return self

    @property
    def uses_vision(self):
        return self.vision.fps > 0 and bool(self.subjects)

    @property
    def target_index(self):
        for k, s in enumerate(self.subjects):
            if s.target:
                return k
        return None


def scenario_names():
    return sorted(f[:-5] for f in os.listdir(SCENARIO_DIR) if f.endswith(".toml"))


def scenario_path(name):
    if name.endswith(".toml") or os.sep in name:
        return name
    return os.path.join(SCENARIO_DIR, name + ".toml")


def _section(cls, table, where):
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys by name."""
    if not isinstance(table, dict):
        raise ValueError("[%s] must be a table" % where)
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in known:
            raise ValueError("%s.%s: unknown key (known: %s)" % (where, key, ", ".join(sorted(known))))
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError("%s.%s = %r: must be true or false" % (where, key, value))
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("%s.%s = %r: must be a number" % (where, key, value))
            value = int(value) if isinstance(default, int) and value == int(value) else value
            if isinstance(default, int) and not isinstance(value, int):
                raise ValueError("%s.%s = %r: must be an integer" % (where, key, value))
        if isinstance(default, str) and not isinstance(value, str):
            raise ValueError("%s.%s = %r: must be a string" % (where, key, value))
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[key] = value
    return cls(**kwargs)


_SECTIONS = {
    "handle": HandleMotion, "camera": None, "link": LinkParams, "imu": ImuParams, "motor": BldcParams,
    "sensor": AngleSensorParams, "phone": PhoneParams, "light": LightParams,
}


def parse_scenario(doc, source="<string>"):
    """A validated Scenario from a parsed TOML document."""
    try:
        doc = dict(doc)
        if "name" not in doc:
            raise ValueError("name: missing (every scenario names itself)")
        kwargs = {}
        top = {f.name: f for f in fields(Scenario)}
        for key, value in doc.items():
            if key == "camera":
                cam = dict(value) if isinstance(value, dict) else value
                if not isinstance(cam, dict):
                    raise ValueError("[camera] must be a table")
                vis = {k: cam.pop(k) for k in ("fps", "latency_s") if k in cam}
                kwargs["camera"] = _section(CameraParams, cam, "camera")
                kwargs["vision"] = _section(VisionParams, vis, "camera")
            elif key in _SECTIONS:
                kwargs[key] = _section(_SECTIONS[key], value, key)
            elif key == "subjects":
                if not isinstance(value, list):
                    raise ValueError("subjects: must be an array of tables ([[subjects]])")
                kwargs[key] = tuple(_section(Subject, v, "subjects[%d]" % k) for k, v in enumerate(value))
            elif key == "gestures":
                if not isinstance(value, list):
                    raise ValueError("gestures: must be an array of tables ([[gestures]])")
                kwargs[key] = tuple(_section(GestureEvent, v, "gestures[%d]" % k) for k, v in enumerate(value))
            elif key == "firmware":
                if not isinstance(value, dict):
                    raise ValueError("[firmware] must be a table of config key = value")
                for name, v in value.items():
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise ValueError("firmware.%s = %r: must be a number" % (name, v))
                kwargs[key] = tuple(sorted(value.items()))
            elif key in top and key not in ("vision", "source"):
                kwargs[key] = value
            else:
                raise ValueError("%s: unknown key" % key)
        for key in ("seconds", "warmup_s"):
            if key in kwargs and (isinstance(kwargs[key], bool) or not isinstance(kwargs[key], (int, float))):
                raise ValueError("%s = %r: must be a number" % (key, kwargs[key]))
        return Scenario(source=source, **kwargs).validate()
    except (ValueError, TypeError) as exc:
        raise ScenarioError("scenario %s: %s" % (source, exc)) from None


def load_scenario(name, overrides=None):
    """Load a bundled scenario by name, or a TOML file by path; ``overrides`` replaces top-level keys."""
    path = scenario_path(name)
    if not os.path.exists(path):
        raise ScenarioError("unknown scenario %r: no file %s (bundled: %s)" % (name, path, ", ".join(scenario_names())))
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("scenario %s: bad TOML: %s" % (path, exc)) from None
    except OSError as exc:
        raise ScenarioError("scenario %s: cannot read: %s" % (path, exc)) from None
    scenario = parse_scenario(doc, source=path)
    if overrides:
        try:
            scenario = replace(scenario, **overrides).validate()
        except (ValueError, TypeError) as exc:
            raise ScenarioError("scenario %s with %r: %s" % (path, overrides, exc)) from None
    return scenario
