"""The simulated gimbal as one steppable object: plant, motors, IMU, link, firmware, camera.

This is what stands in for a real gimbal and its world; the host side
(``host/simrig.py``) serves it to the host loop as a camera, a serial port
and a clock. Time is simulated and advances only in
:meth:`SimGimbal.step_to`; everything is deterministic for a seed.

    from opensteady.sim.scenario import load_scenario
    from opensteady.sim.world import SimGimbal

    g = SimGimbal(load_scenario("track-crossing"), firmware="inprocess", seed=0)
    g.write(frame_bytes)            # host -> firmware, at the current simulated time
    g.step_to(g.time_s + 1 / 30)    # run the 1 kHz lockstep loop up to then
    data = g.read()                 # firmware -> host bytes that have arrived
    frame_rgb = g.render()          # the virtual camera's view now (H x W x 3 uint8)
    yaw, pitch, roll = g.camera_ypr_deg()
    g.close()

Each control tick (period from the firmware's ``loop_hz``, 1 ms by default):
bytes that have crossed the host->device link are fed to the firmware's
UART, the IMU model samples the plant, the firmware ticks once, its UART
output enters the device->host link, the motor models turn the duties into
torques, the hand moves, and MuJoCo steps once.
"""

import importlib
import math
import types

import numpy as np

from opensteady.sim.board_config import board_config_bytes
from opensteady.sim.camera import Billboard, PinholeCamera, Scene
from opensteady.sim.disturbance import HandleDisturbance
from opensteady.sim.firmware_runner import FirmwareError, make_firmware
from opensteady.sim.lockstep import POSE_BLOCK_TICKS, TRACE_EVERY_TICKS  # noqa: F401 - re-exported

MODELS = ("plant", "imu", "motor", "link", "angle_sensor", "hal", "lockstep")  # sim/compiled_sim.py compiles these

FACE_WIDTH_M = 0.16  # an adult face, ear to ear seen from the front
SETTLE_S = 0.3  # the plant settles in the hand before the firmware boots


class Traces:
    """Time series kept during a run (lists of floats, appended every TRACE_EVERY_TICKS ticks)."""

    def __init__(self):
        self.t_s = []
        self.camera_ypr_deg = []
        self.handle_ypr_deg = []
        self.joint_deg = []
        self.effort = []  # |motor torque| / peak torque, per axis


def sim_models(firmware):
    """The per-tick models and loop for a firmware mode, by class name (``.GimbalPlant``, ``.Lockstep``, ...).

    Compiled with the firmware in ``compiled`` mode (sim/compiled_sim.py);
    the interpreted modes (``inprocess``, ``micropython``) keep the plain
    Python classes, so they need no C compiler. Both give the same results
    to the bit (tests/test_sim_compiled.py).
    """
    package = "opensteady.sim"
    if firmware == "compiled":
        from opensteady.sim.compiled_firmware import CompileError
        from opensteady.sim.compiled_sim import load_package

        try:
            package = load_package().__name__
        except CompileError as exc:
            raise FirmwareError(str(exc)) from None
    mod = {name: importlib.import_module(package + "." + name) for name in MODELS}
    return types.SimpleNamespace(
        GimbalPlant=mod["plant"].GimbalPlant, ImuModel=mod["imu"].ImuModel, BldcMotor=mod["motor"].BldcMotor,
        ServoModel=mod["motor"].ServoModel, SerialLink=mod["link"].SerialLink,
        AngleSensorModel=mod["angle_sensor"].AngleSensorModel, SimHal=mod["hal"].SimHal,
        Lockstep=mod["lockstep"].Lockstep)


def _seeds(seed):
    # independent, repeatable streams for each random part
    return {name: seed * 1009 + k for k, name in enumerate(("imu", "handle", "link_up", "link_down",
                                                             "handle_imu", "sensor", "camera_noise"))}


def load_face_image(path):
    """An RGB image from a file, with a clear error if it cannot be read."""
    import cv2

    try:
        with open(path, "rb") as f:
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as exc:
        raise ValueError("cannot read face image %r: %s" % (str(path), exc.strerror or exc)) from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if len(data) else None
    if img is None:
        raise ValueError("cannot read face image %r: not an image OpenCV can decode" % str(path))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def subject_image(spec, face_image=None):
    """The photo for a subject's ``image`` key: 'astronaut', 'astronaut-mirrored' or a path."""
    from skimage import data

    if spec in ("astronaut", "face") and face_image is not None:
        return face_image
    if spec == "astronaut":
        return data.astronaut()[0:400, 96:416].copy()  # head and shoulders
    if spec == "astronaut-mirrored":
        return data.astronaut()[0:400, 96:416][:, ::-1].copy()
    return load_face_image(spec)


def locate_face(image_rgb, perception=None):
    """(cx, cy, w) of the most confident face in a photo, as fractions of its size; ValueError if none."""
    if perception is None:
        from opensteady.vision.pipeline import Perception, VisionConfig

        perception = Perception(VisionConfig(hands=False, persons="none", static_images=True))
    det = perception.process(image_rgb, 0.0)
    if not det.faces:
        raise ValueError("no face found in the subject image (%dx%d); use a clear frontal photo of a person"
                         % (image_rgb.shape[1], image_rgb.shape[0]))
    face = max(det.faces, key=lambda f: f.score)
    return face.box.cx, face.box.cy, face.box.w


class SimGimbal:
    def __init__(self, scenario, firmware="inprocess", seed=0, face_image=None, config_bytes=None,
                 perception=None):
        self.scenario = scenario
        self.seed = seed
        s = _seeds(seed)
        ls = sim_models(firmware)
        self.plant = ls.GimbalPlant(phone_mass_kg=scenario.phone.mass_kg)
        self.handle = HandleDisturbance(scenario.handle, seed=s["handle"])
        self.imu = ls.ImuModel(scenario.imu, seed=s["imu"])
        # the optional second IMU on the handle: same part, its own errors
        self.handle_imu = ls.ImuModel(scenario.imu, seed=s["handle_imu"]) if scenario.imu.handle_imu else None
        self.motors = [ls.BldcMotor(scenario.motor) for _ in range(3)]
        self.servos = [ls.ServoModel() for _ in range(3)]
        self.peak_torque_nm = scenario.motor.peak_torque_nm
        self.link_up = ls.SerialLink(scenario.link, seed=s["link_up"])  # host -> device
        self.link_down = ls.SerialLink(scenario.link, seed=s["link_down"])  # device -> host
        if config_bytes is None:
            config_bytes = board_config_bytes(scenario.firmware)
        # rotor-angle sensors on the motors (the closed-loop drive): None when not fitted
        self.angle_sensor = (ls.AngleSensorModel(scenario.sensor, seed=s["sensor"]) if scenario.sensor.fitted
                             else None)
        self.hal = ls.SimHal(self.imu, config_bytes=config_bytes, handle_imu=self.handle_imu)
        self.loop = ls.Lockstep(self.plant, self.hal, self.handle, self.imu, self.handle_imu, self.motors,
                                self.servos, self.link_up, self.link_down, self.angle_sensor, self.peak_torque_nm,
                                Traces())
        self._settle()
        self.firmware = make_firmware(firmware, self.hal)
        self.period_us = self.firmware.period_us
        # with sensors fitted the tick's reads take a real share of it: the new duties reach the
        # motors output_delay_us after the tick starts, and the old ones drive it until then
        hold_frac = 0.0
        if self.angle_sensor is not None:
            hold_frac = min(1.0, scenario.sensor.output_delay_us / self.period_us)
        self.loop.start(self.firmware.tick, self.period_us, hold_frac)
        self.dt_s = self.loop.dt_s
        self.camera = PinholeCamera(scenario.camera)
        self._noise = np.random.default_rng(s["camera_noise"])  # the camera's read noise ([light] noise_dn)
        self.scene = None
        if scenario.subjects:
            self._build_scene(face_image, perception)

    # --- set-up -------------------------------------------------------------------
    def _settle(self):
        pos, ypr = self.handle.pose(0.0)
        self.plant.set_hand_pose(pos, ypr, teleport=True)
        for _ in range(int(SETTLE_S / self.plant.timestep_s)):
            self.plant.step(self.loop.cogging_only())
        self.plant.data.time = 0.0
        self.loop.sample_imus(0.0)

    def _build_scene(self, face_image, perception):
        boards = []
        if perception is None:
            from opensteady.vision.pipeline import Perception, VisionConfig

            perception = Perception(VisionConfig(hands=False, persons="none", static_images=True))
        for subj in self.scenario.subjects:
            img = subject_image(subj.image, face_image)
            cx, cy, w = locate_face(img, perception)
            width_m = subj.width_m if subj.width_m > 0 else FACE_WIDTH_M / w
            boards.append(Billboard(img, width_m, face_uv=(cx, cy), name=subj.name))
        self.scene = Scene(self.camera, boards)
        self._gimbal_centre = np.array([0.0, 0.0, self.plant.data.xpos[self.plant._payload_body][2]])

    # --- the host's view ------------------------------------------------------------
    @property
    def tick_count(self):
        """Control ticks run so far."""
        return self.loop.tick_count

    @property
    def time_s(self):
        return self.loop.tick_count * self.period_us / 1e6

    @property
    def traces(self):
        return self.loop.traces

    @property
    def max_effort(self):
        """The largest |motor torque| / peak torque on any axis so far (traced ticks)."""
        return self.loop.max_effort

    def write(self, data):
        """Send bytes host -> firmware at the current simulated time."""
        self.link_up.write(data, self.time_s)

    def read(self):
        """Bytes firmware -> host that have arrived by now."""
        return self.link_down.read(self.time_s)

    def camera_ypr_deg(self):
        return self.plant.camera_ypr_deg()

    def handle_ypr_deg(self):
        return self.plant.handle_ypr_deg()

    # --- the world's subjects -------------------------------------------------------
    def subject_positions_m(self, t_s):
        out = []
        base = self._gimbal_centre
        for subj in self.scenario.subjects:
            az_deg, dist_m, height_m = subj.at(t_s)
            az = math.radians(az_deg)  # positive to the right, i.e. towards -y
            out.append(base + np.array([dist_m * math.cos(az), -dist_m * math.sin(az), height_m]))
        return out

    def render(self):
        """The virtual camera's frame at the current time (RGB uint8)."""
        if self.scene is None:
            raise ValueError("scenario %s has no [[subjects]], so there is nothing to film" % self.scenario.name)
        t = self.time_s
        pos, rot = self.plant.camera_pose()
        visible = [not s.is_hidden(t) for s in self.scenario.subjects]
        light = self.scenario.light
        frame = self.scene.render(pos, rot, self.subject_positions_m(t), visible=visible,
                                  look_at_m=self._gimbal_centre, light=light,
                                  light_duty=self.hal.light_duty_u16 / 65535.0)
        if light.noise_dn > 0:
            noise = self._noise.standard_normal(frame.shape, dtype=np.float32)
            noise *= light.noise_dn
            noise += frame
            np.clip(noise, 0, 255, out=noise)
            frame = np.rint(noise).astype(np.uint8)
        return frame

    def subject_face_px(self, k):
        """(u, v) pixel position of subject k's face centre, and whether it is in the frame and unhidden."""
        t = self.time_s
        subj = self.scenario.subjects[k]
        centre = self.subject_positions_m(t)[k]
        face = self.scene.billboards[k].face_world(centre, self._gimbal_centre)
        pos, rot = self.plant.camera_pose()
        uv, depth = self.camera.project([face], pos, rot)
        u, v = float(uv[0, 0]), float(uv[0, 1])
        p = self.camera.params
        in_view = depth[0] > 0 and 0 <= u < p.width and 0 <= v < p.height and not subj.is_hidden(t)
        return (u, v), bool(in_view)

    # --- stepping ------------------------------------------------------------------
    def step_to(self, t_s):
        """Run control ticks until simulated time reaches ``t_s``."""
        self.loop.step_to_tick(int(math.floor(t_s * 1e6 / self.period_us + 1e-9)))

    def close(self):
        self.firmware.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
