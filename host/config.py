"""The tracker's settings: defaults, one TOML file, then command-line flags.

``SCHEMA`` lists every setting with its default and its check. A default that
belongs to a component (``FramingConfig``, ``VisionConfig``, ``TrackerConfig``,
``PipelineConfig``, a driver's or the camera's constructor) is read from that
component, so each default is written in exactly one place; only the
application's own settings (source, driver, port, output) are written here.
tests/test_host_app.py checks that the defaults built from ``SCHEMA`` equal
the components' own. A TOML file (see
docs/config.example.toml) overrides them; ``opensteady track`` flags
override the file. A bad key or value raises :class:`ConfigError` whose
message names the file, the line, the key, the value and the reason.

    settings = load_config("opensteady.toml")       # or load_config(None) for defaults
    settings["framing"]["max_rate_dps"]             # -> 120.0
    pipeline_config = build_pipeline_config(settings)
"""

import copy
import inspect
import math
import os
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from opensteady.host.calibration import PRESETS, CameraMapping, parse_point
from opensteady.host.capture import CameraSource
from opensteady.host.framing import LOST_ACTIONS, FramingConfig
from opensteady.host.mount import Mount, create_backend
from opensteady.host.mount.mavlink import MavlinkBackend
from opensteady.host.mount.simplebgc import SimpleBGCBackend
from opensteady.host.pipeline import ACTIONS, DEFAULT_GESTURE_ACTIONS, PipelineConfig
from opensteady.vision.pipeline import VisionConfig
from opensteady.vision.tracker import TrackerConfig

GIMBAL_CHOICES = ("auto", "opensteady", "simplebgc", "mavlink", "sim", "none")
ORIENTATIONS = ("landscape", "portrait")
GESTURE_NAMES = ("open_palm", "victory", "fist", "pointing", "thumbs_up")


class ConfigError(ValueError):
    pass


def _number(lo=None, hi=None, lo_open=False, integer=False):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            return "must be %s" % ("an integer" if integer else "a number")
        if not math.isfinite(v):
            return "must be finite"
        if lo is not None and (v <= lo if lo_open else v < lo):
            return "must be %s %s" % (">" if lo_open else ">=", lo)
        if hi is not None and v > hi:
            return "must be <= %s" % hi
        return None
    return check


def _choice(options):
    def check(v):
        return None if v in options else "must be one of %s" % ", ".join(repr(o) for o in options)
    return check


def _bool(v):
    return None if isinstance(v, bool) else "must be true or false"


def _string(v):
    return None if isinstance(v, str) else "must be a string"


def _camera_source(v):
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        return "must be a camera index (0, 1, ...) or a video file path"
    return None


def _preset_name(point):
    return next(name for name, xy in PRESETS.items() if xy == tuple(point))


def _point(v):
    try:
        parse_point(v)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _default_of(component, name):
    """The default of parameter ``name`` of a dataclass or a constructor: where that default lives."""
    default = inspect.signature(component).parameters[name].default
    if default is inspect.Parameter.empty:
        raise TypeError("%s.%s has no default" % (component.__qualname__, name))
    return default


_F = FramingConfig()
_V = VisionConfig()
_T = TrackerConfig()
_P = PipelineConfig()
_POS = _number(0, lo_open=True)
_NONNEG = _number(0)


def _vision(key, check):
    return (getattr(_V, key), check)


# section -> key -> (default, check).
SCHEMA = {
    "camera": {
        "source": (0, _camera_source),
        "width": (_default_of(CameraSource, "width"), _number(16, 7680, integer=True)),
        "height": (_default_of(CameraSource, "height"), _number(16, 4320, integer=True)),
        "fps": (_default_of(CameraSource, "fps"), _number(1, 240)),
        "hfov_deg": (_F.hfov_deg, _number(1, 179)),
        "vfov_deg": (_F.vfov_deg, _number(1, 179)),
        "mirror": (_V.mirrored, _bool),
        "retry_s": (_default_of(CameraSource, "retry_s"), _POS),
        "give_up_s": (30.0, _POS),  # the app gives up on a missing camera; FrameGrabber itself never does
    },
    "gimbal": {
        "driver": ("auto", _choice(GIMBAL_CHOICES)),
        "port": ("", _string),
        "baud": (_default_of(create_backend, "baud"), _number(1200, 4000000, integer=True)),
        "stall_s": (_default_of(Mount, "stall_s"), _POS),
        "telemetry_max_age_s": (_default_of(Mount, "telemetry_max_age_s"), _POS),
        "alive_s": (_default_of(SimpleBGCBackend, "alive_s"), _POS),
        "motors_off_on_exit": (False, _bool),
    },
    "mavlink": {
        "message": (_default_of(MavlinkBackend, "message"), _choice(("pitchyaw", "attitude"))),
        "source_system": (_default_of(MavlinkBackend, "source_system"), _number(1, 255, integer=True)),
        "target_system": (_default_of(MavlinkBackend, "target_system"), _number(0, 255, integer=True)),
        "target_component": (_default_of(MavlinkBackend, "target_component"), _number(0, 255, integer=True)),
        "gimbal_device_id": (_default_of(MavlinkBackend, "gimbal_device_id"), _number(0, 255, integer=True)),
    },
    "simplebgc": {
        "telemetry_interval_s": (_default_of(SimpleBGCBackend, "telemetry_interval_s"), _POS),
        "motors_on_at_open": (_default_of(SimpleBGCBackend, "motors_on_at_open"), _bool),
    },
    "framing": {
        "kp": (_F.kp, _NONNEG),
        "ki": (_F.ki, _NONNEG),
        "kd": (_F.kd, _NONNEG),
        "deadband_deg": (_F.deadband_deg, _NONNEG),
        "settle_rate_dps": (_F.settle_rate_dps, _NONNEG),
        "max_rate_dps": (_F.max_rate_dps, _POS),
        "max_accel_dps2": (_F.max_accel_dps2, _POS),
        "smoothing_s": (_F.smoothing_s, _NONNEG),
        "feedforward": (_F.feedforward, _number(0, 2)),
        "feedforward_smoothing_s": (_F.feedforward_smoothing_s, _NONNEG),
        "motion_noise": (_F.motion_noise, _NONNEG),
        "bearing_noise_deg": (_F.bearing_noise_deg, _POS),
        "camera_accel_dps2": (_F.camera_accel_dps2, _NONNEG),
        "orientation": ("portrait" if _F.roll_deg == 90.0 else "landscape", _choice(ORIENTATIONS)),
        "invert_yaw": (_F.invert_yaw, _bool),
        "invert_pitch": (_F.invert_pitch, _bool),
        "coast_s": (_F.coast_s, _NONNEG),
        "coast_decay_s": (_F.coast_decay_s, _NONNEG),
        "subject_rate_smoothing_s": (_F.subject_rate_smoothing_s, _NONNEG),
        "lost_hold_s": (_F.lost_hold_s, _NONNEG),
        "lost_action": (_F.lost_action, _choice(LOST_ACTIONS)),
        "recentre_s": (_F.recentre_s, _NONNEG),
        "sweep_rate_dps": (_F.sweep_rate_dps, _POS),
        "sweep_amplitude_deg": (_F.sweep_amplitude_deg, _POS),
        "max_dt_s": (_F.max_dt_s, _POS),
    },
    "calibration": {
        "point": (_preset_name(_P.calibration_point), _point),
        "offset_x": (_default_of(CameraMapping, "offset_x"), _number(-1, 1)),
        "offset_y": (_default_of(CameraMapping, "offset_y"), _number(-1, 1)),
        "scale_x": (_default_of(CameraMapping, "scale_x"), _number(0, 10, lo_open=True)),
        "scale_y": (_default_of(CameraMapping, "scale_y"), _number(0, 10, lo_open=True)),
    },
    "vision": {
        "faces": _vision("faces", _bool),
        "hands": _vision("hands", _bool),
        "pose": _vision("pose", _bool),
        "backend": _vision("backend", _choice(("mediapipe", "haar"))),
        "face_range": _vision("face_range", _choice(("auto", "short", "full"))),
        "min_face_score": _vision("min_face_score", _number(0, 1)),
        "min_hand_score": _vision("min_hand_score", _number(0, 1)),
        "max_hands": _vision("max_hands", _number(1, 4, integer=True)),
        "hand_model_complexity": _vision("hand_model_complexity", _choice((0, 1))),
        "hands_async": (_P.hands_async, _bool),
    },
    "tracker": {
        "select": (_T.select, _choice(("largest", "nearest", "gesture", "manual"))),
        "latency_s": (_T.latency_s, _NONNEG),
        "coast_s": (_T.coast_s, _POS),
        "lost_timeout_s": (_T.lost_timeout_s, _POS),
    },
    "gestures": dict(
        {name: (DEFAULT_GESTURE_ACTIONS[name], _choice(ACTIONS)) for name in GESTURE_NAMES},
        hold_ms=(_P.gesture_hold_ms, _NONNEG),
        photo_countdown_s=(_P.photo_countdown_s, _NONNEG),
    ),
    "light": {
        "level": (_P.light_level, _number(0, 3, integer=True)),  # the board's fill light at start: 0 off, 1..3
    },
    "output": {
        "dir": ("", _string),  # "" = default_output_dir()
        "session_log": (True, _bool),
    },
}


OUTPUT_DIR_ENV = "OPENSTEADY_OUTPUT_DIR"


def _xdg_videos_dir(env, home):
    """The desktop's videos folder on Linux: $XDG_VIDEOS_DIR, then user-dirs.dirs, then ~/Videos."""
    if env.get("XDG_VIDEOS_DIR"):
        return env["XDG_VIDEOS_DIR"]
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    try:
        with open(os.path.join(config_home, "user-dirs.dirs"), encoding="utf-8") as f:
            for line in f:
                match = re.match(r'^\s*XDG_VIDEOS_DIR\s*=\s*"(.*)"\s*$', line)
                if match:
                    return match.group(1).replace("$HOME", home)
    except OSError:
        pass
    return os.path.join(home, "Videos")


def default_output_dir(env=None, platform=None, home=None):
    """Where photos, videos and session logs go when neither --output-dir nor [output] dir is given.

    ``$OPENSTEADY_OUTPUT_DIR`` if set; otherwise an ``OpenSteady`` folder in the
    desktop's videos folder, as a desktop app would use: ``~/Videos`` on Linux
    (or the XDG videos folder) and Windows, ``~/Movies`` on macOS. Never
    relative to the current directory, so nothing lands inside a checkout.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = os.path.expanduser("~") if home is None else home
    if env.get(OUTPUT_DIR_ENV):
        return os.path.expanduser(env[OUTPUT_DIR_ENV])
    if platform == "darwin":
        videos = os.path.join(home, "Movies")
    elif platform.startswith("win"):
        videos = os.path.join(home, "Videos")
    else:
        videos = _xdg_videos_dir(env, home)
    return os.path.join(videos, "OpenSteady")


def output_dir(settings, env=None):
    """The output folder for these settings: ``[output] dir`` (or --output-dir) if given, else the default."""
    configured = settings["output"]["dir"]
    return os.path.expanduser(configured) if configured else default_output_dir(env)


def defaults():
    return {section: {key: copy.deepcopy(spec[0]) for key, spec in keys.items()} for section, keys in SCHEMA.items()}


def _line_of(text, section, key=None):
    """1-based line of ``key`` in ``[section]`` (or of the section header), or None."""
    current = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]$", line)
        if header:
            current = header.group(1)
            if key is None and current == section:
                return number
            continue
        if key is not None and current == section and re.match(r"^%s\s*=" % re.escape(key), line):
            return number
    return None


def _where(path, text, section, key=None):
    line = _line_of(text, section, key) if text is not None else None
    return "%s%s" % (path, ":%d" % line if line else "")


def load_config(path=None, text=None):
    """Defaults overridden by the TOML file at ``path`` (or the TOML ``text``); validated."""
    settings = defaults()
    if path is None and text is None:
        return settings
    label = path or "<config>"
    if text is None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror or exc)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("%s: not valid TOML: %s" % (label, exc)) from None
    for section, values in data.items():
        if section not in SCHEMA:
            raise ConfigError("%s: unknown section [%s]; known sections: %s"
                              % (_where(label, text, section), section, ", ".join(SCHEMA)))
        if not isinstance(values, dict):
            raise ConfigError("%s: %s must be a [section] table" % (label, section))
        for key, value in values.items():
            where = _where(label, text, section, key)
            if key not in SCHEMA[section]:
                raise ConfigError("%s: unknown key %s.%s; known keys in [%s]: %s"
                                  % (where, section, key, section, ", ".join(SCHEMA[section])))
            problem = SCHEMA[section][key][1](value)
            if problem:
                raise ConfigError("%s: %s.%s = %r: %s" % (where, section, key, value, problem))
            settings[section][key] = value
    try:
        build_pipeline_config(settings)
    except ValueError as exc:
        key = re.search(r"([a-z_]+)\.([a-z_]+) =", str(exc))
        where = _where(label, text, key.group(1), key.group(2)) if key else label
        raise ConfigError("%s: %s" % (where, exc)) from None
    return settings


def set_value(settings, section, key, value, source="command line"):
    """Override one setting (a CLI flag), with the same validation as the file."""
    problem = SCHEMA[section][key][1](value)
    if problem:
        raise ConfigError("%s: %s.%s = %r: %s" % (source, section, key, value, problem))
    settings[section][key] = value


def build_pipeline_config(settings):
    """The validated PipelineConfig for these settings."""
    f = settings["framing"]
    cam = settings["camera"]
    framing = FramingConfig(
        hfov_deg=float(cam["hfov_deg"]), vfov_deg=float(cam["vfov_deg"]),
        kp=f["kp"], ki=f["ki"], kd=f["kd"], deadband_deg=f["deadband_deg"], settle_rate_dps=f["settle_rate_dps"],
        max_rate_dps=f["max_rate_dps"], max_accel_dps2=f["max_accel_dps2"], smoothing_s=f["smoothing_s"],
        feedforward=f["feedforward"], feedforward_smoothing_s=f["feedforward_smoothing_s"],
        motion_noise=f["motion_noise"], bearing_noise_deg=f["bearing_noise_deg"],
        camera_accel_dps2=f["camera_accel_dps2"],
        roll_deg=90.0 if f["orientation"] == "portrait" else 0.0,
        invert_yaw=f["invert_yaw"], invert_pitch=f["invert_pitch"],
        coast_s=f["coast_s"], coast_decay_s=f["coast_decay_s"], subject_rate_smoothing_s=f["subject_rate_smoothing_s"],
        lost_hold_s=f["lost_hold_s"], lost_action=f["lost_action"], recentre_s=f["recentre_s"],
        sweep_rate_dps=f["sweep_rate_dps"], sweep_amplitude_deg=f["sweep_amplitude_deg"], max_dt_s=f["max_dt_s"],
    )
    c = settings["calibration"]
    g = settings["gestures"]
    vision = dict(settings["vision"])
    hands_async = vision.pop("hands_async")
    vision["mirrored"] = cam["mirror"]
    return PipelineConfig(
        framing=framing,
        calibration_point=parse_point(c["point"]),
        camera_mapping=CameraMapping(c["offset_x"], c["offset_y"], c["scale_x"], c["scale_y"]),
        gesture_actions={name: g[name] for name in GESTURE_NAMES},
        gesture_hold_ms=g["hold_ms"],
        photo_countdown_s=g["photo_countdown_s"],
        light_level=int(settings["light"]["level"]),
        nominal_dt_s=1.0 / cam["fps"],
        vision=vision,
        hands_async=hands_async,
        tracker=dict(settings["tracker"]),
    ).validate()


def describe_presets():
    return ", ".join(PRESETS)
