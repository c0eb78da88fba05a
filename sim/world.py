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

import math

import numpy as np

from opensteady.sim.angle_sensor import AngleSensorModel
from opensteady.sim.board_config import board_config_bytes
from opensteady.sim.camera import Billboard, PinholeCamera, Scene
from opensteady.sim.disturbance import HandleDisturbance
from opensteady.sim.firmware_runner import make_firmware
from opensteady.sim.hal import SimHal
from opensteady.sim.imu import ImuModel
from opensteady.sim.link import SerialLink
from opensteady.sim.motor import BldcMotor, ServoModel
from opensteady.sim.plant import GimbalPlant

FACE_WIDTH_M = 0.16  # an adult face, ear to ear seen from the front
SETTLE_S = 0.3  # the plant settles in the hand before the firmware boots
TRACE_EVERY_TICKS = 4  # traces are kept at 250 Hz
POSE_BLOCK_TICKS = 1000  # the hand's pose is computed a block of ticks at a time (one numpy call)


class Traces:
    """Time series kept during a run (lists of floats, appended every TRACE_EVERY_TICKS ticks)."""

    def __init__(self):
        self.t_s = []
        self.camera_ypr_deg = []
        self.handle_ypr_deg = []
        self.joint_deg = []
        self.effort = []  # |motor torque| / peak torque, per axis


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
        self.plant = GimbalPlant(phone_mass_kg=scenario.phone.mass_kg)
        self._sensor_adr = self.plant.sensor_adr
        self.dt_s = self.plant.timestep_s
        self.handle = HandleDisturbance(scenario.handle, seed=s["handle"])
        self.imu = ImuModel(scenario.imu, seed=s["imu"])
        # the optional second IMU on the handle: same part, its own errors
        self.handle_imu = ImuModel(scenario.imu, seed=s["handle_imu"]) if scenario.imu.handle_imu else None
        self.motors = [BldcMotor(scenario.motor) for _ in range(3)]
        self.servos = [ServoModel() for _ in range(3)]
        self.peak_torque_nm = scenario.motor.peak_torque_nm
        self.link_up = SerialLink(scenario.link, seed=s["link_up"])  # host -> device
        self.link_down = SerialLink(scenario.link, seed=s["link_down"])  # device -> host
        if config_bytes is None:
            config_bytes = board_config_bytes(scenario.firmware)
        # rotor-angle sensors on the motors (the closed-loop drive): None when not fitted
        self.angle_sensor = AngleSensorModel(scenario.sensor, seed=s["sensor"]) if scenario.sensor.fitted else None
        self.hal = SimHal(self.imu, config_bytes=config_bytes, handle_imu=self.handle_imu)
        self._settle()
        self.firmware = make_firmware(firmware, self.hal)
        self.period_us = self.firmware.period_us
        if self.period_us != int(round(self.dt_s * 1e6)):
            # the plant steps once per control tick; keep the two in step
            self.dt_s = self.period_us / 1e6
            self.plant.model.opt.timestep = self.dt_s
        self.tick_count = 0
        self._pose_block = None  # POSE_BLOCK_TICKS mocap rows of the hand, 7 floats each
        self._pose_block_start = 0
        self._pose_block_len = 0
        self._fw_tick = self.firmware.tick
        # with sensors fitted the tick's reads take a real share of it: the new duties reach the
        # motors output_delay_us after the tick starts, and the old ones drive it until then
        self._hold_frac = 0.0
        if self.angle_sensor is not None:
            self._hold_frac = min(1.0, scenario.sensor.output_delay_us / self.period_us)
        self._old_duties = [[32768, 32768, 32768] for _ in range(3)]
        self.traces = Traces()
        self.max_effort = 0.0
        self.camera = PinholeCamera(scenario.camera)
        self._noise = np.random.default_rng(s["camera_noise"])  # the camera's read noise ([light] noise_dn)
        self.scene = None
        if scenario.subjects:
            self._build_scene(face_image, perception)

    # --- set-up -------------------------------------------------------------------
    def _settle(self):
        pos, ypr = self.handle.pose(0.0)
        self.plant.set_hand_pose(pos, ypr, teleport=True)
        for _ in range(int(SETTLE_S / self.dt_s)):
            self.plant.step(self._cogging_only())
        self.plant.data.time = 0.0
        self._sample_imus(0.0)

    def _sample_imus(self, t_s):
        sens = self.plant.sensors()
        g, a, hg, ha = self._sensor_adr
        self.imu.update(t_s, sens[g:g + 3], sens[a:a + 3])
        if self.handle_imu is not None:
            self.handle_imu.update(t_s, sens[hg:hg + 3], sens[ha:ha + 3])

    def _cogging_only(self):
        return [m.torque_nm(0, 0, 0, self.plant.joint_rad(k), 0.0) for k, m in enumerate(self.motors)]

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
    def time_s(self):
        return self.tick_count * self.period_us / 1e6

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
        end_tick = int(math.floor(t_s * 1e6 / self.period_us + 1e-9))
        while self.tick_count < end_tick:
            self._tick()

    def _tick(self):
        # The lockstep tick, 1000 times per simulated second: plain floats and
        # lists, one conversion per MuJoCo array, no per-tick objects beyond those.
        plant = self.plant
        hal = self.hal
        now_us = self.tick_count * self.period_us
        t_s = now_us / 1e6
        up = self.link_up
        if up._in_flight:
            data = up.read(t_s)
            if data:
                hal.feed_rx(data)
        self._sample_imus(t_s)
        hal.now_us = now_us
        angle, rate = plant.joint_state()
        sensor = self.angle_sensor
        if sensor is not None:
            counts = hal.angle_counts
            counts[0] = sensor.read(0, angle[0], rate[0])
            counts[1] = sensor.read(1, angle[1], rate[1])
            counts[2] = sensor.read(2, angle[2], rate[2])
        self._fw_tick(now_us)
        if hal.tx:
            self.link_down.write(hal.take_tx(), t_s)
        servo_us = hal.servo_us
        duties = hal.duties
        motors = self.motors
        on = hal.motors_on
        torques = [0.0, 0.0, 0.0]
        for k in (0, 1, 2):
            if servo_us[k]:
                # a servo axis: the servo's own gearmotor is the actuator
                servo = self.servos[k]
                servo.write(servo_us[k])
                torques[k] = servo.torque_nm(angle[k], rate[k], self.dt_s)
            else:
                motor = motors[k]
                motor.enabled = on
                d = duties[k]
                torques[k] = motor.torque_nm(d[0], d[1], d[2], angle[k], rate[k])
                w = self._hold_frac
                if w:
                    old = self._old_duties[k]
                    torques[k] = (1.0 - w) * torques[k] + w * motor.torque_nm(old[0], old[1], old[2], angle[k],
                                                                               rate[k])
                    old[0], old[1], old[2] = d[0], d[1], d[2]
        self.tick_count += 1
        i = self.tick_count - self._pose_block_start
        if i >= self._pose_block_len:
            self._next_pose_block()
            i = 0
        plant.set_hand_mocap(self._pose_block[i])
        plant.step(torques)
        if self.tick_count % TRACE_EVERY_TICKS == 0:
            self._trace(torques)

    def _trace(self, torques):
        plant = self.plant
        effort = [0.0, 0.0, 0.0]
        for k in (0, 1, 2):
            if self.hal.servo_us[k]:
                effort[k] = abs(torques[k]) / self.servos[k].params.stall_torque_nm
            else:
                effort[k] = abs(torques[k]) / self.peak_torque_nm
        self.max_effort = max(self.max_effort, effort[0], effort[1], effort[2])
        tr = self.traces
        tr.t_s.append(self.time_s)
        tr.camera_ypr_deg.append(plant.camera_ypr_deg())
        tr.handle_ypr_deg.append(plant.handle_ypr_deg())
        angle, _rate = plant.joint_state()
        tr.joint_deg.append([math.degrees(a) for a in angle])
        tr.effort.append(effort)

    def _next_pose_block(self):
        """Precompute the hand's mocap rows for the next POSE_BLOCK_TICKS ticks (one numpy pass)."""
        tick = self.tick_count
        ticks = np.arange(tick, tick + POSE_BLOCK_TICKS)
        self._pose_block = self.plant.hand_mocap_block(self.handle.poses(ticks * (self.period_us / 1e6))).tolist()
        self._pose_block_start = tick
        self._pose_block_len = POSE_BLOCK_TICKS

    def close(self):
        self.firmware.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
