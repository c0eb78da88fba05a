# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""The gimbal's rigid-body dynamics in MuJoCo, and attitude conversions.

:class:`GimbalPlant` loads ``sim/models/gimbal.xml`` and exposes what the rest
of the simulator needs, indexed by the firmware's axis order
(``AXIS_YAW = 0, AXIS_PITCH = 1, AXIS_ROLL = 2``):

    plant = GimbalPlant()
    plant.set_hand_pose(pos_m, ypr_deg)          # from a HandleDisturbance
    plant.step([tau_yaw, tau_pitch, tau_roll])   # one timestep, torques in N*m
    plant.joint_rad(0), plant.joint_rads(0)      # motor shaft angle and rate
    plant.imu_gyro_rads(), plant.imu_accel_mps2()  # true values, chip frame
    plant.handle_gyro_rads(), plant.handle_accel_mps2()  # the handle IMU's, its chip frame
    plant.camera_ypr_deg(), plant.handle_ypr_deg()

MuJoCo's world is x forward, y left, z up. Attitudes are reported in the
firmware's aerospace convention (Z-Y-X yaw, pitch, roll of a
forward-right-down frame: yaw right, pitch up, roll right positive).

Compiled with the simulator's other per-tick models in the ``compiled``
firmware mode (sim/lockstep.py; the C types are in plant.pxd): there the
per-tick methods read and write MuJoCo's arrays through typed views.
"""

import math
import os

import cython
import mujoco
import numpy as np
from cython.cimports.libc.math import asin, atan2

from opensteady import sim as _sim_package  # its folder, also when this module runs compiled from the cache

MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(_sim_package.__file__)), "models", "gimbal.xml")
JOINTS = ("yaw", "pitch", "roll")  # firmware axis order
HAND_HEIGHT_M = 1.3

# FLU <-> FRD: flip y and z
_FLIP = np.diag([1.0, -1.0, -1.0])


def ypr_deg_from_matrix(rot_flu):
    """Aerospace yaw, pitch, roll (deg) of a body whose FLU axes are the columns of ``rot_flu``."""
    return _ypr_deg_from_rows(np.asarray(rot_flu, dtype=float).reshape(-1).tolist())


def _ypr_deg_from_rows(r):
    # r: the 3x3 matrix row-major as 9 floats
    return _ypr_deg(r[0], r[3], r[6], r[7], r[8])


def _ypr_deg(r0, r3, r6, r7, r8):
    # FRD = diag(1, -1, -1) @ R @ diag(1, -1, -1): flip the sign of the entries that mix x with y or z
    yaw = atan2(-r3, r0)
    pitch = -asin(max(-1.0, min(1.0, -r6)))
    roll = atan2(r7, r8)
    return [yaw * _DEG, pitch * _DEG, roll * _DEG]


_DEG = 180.0 / math.pi


def quat_from_ypr_deg(ypr_deg):
    """MuJoCo (w, x, y, z) quaternion of the FLU body with aerospace yaw, pitch, roll (deg)."""
    return tuple(quats_from_ypr_deg(np.asarray([ypr_deg], dtype=float))[0].tolist())


def quats_from_ypr_deg(ypr_deg):
    """Vectorised :func:`quat_from_ypr_deg`: (N, 3) yaw, pitch, roll in degrees -> (N, 4) w, x, y, z."""
    # FRD Z-Y-X = FLU rotations about -z (yaw), -y (pitch), +x (roll)
    half = np.radians(ypr_deg) / 2
    cy, cp, cr = np.cos(half).T
    sy, sp, sr = np.sin(half).T
    sy = -sy
    sp = -sp
    return np.stack((cy * cp * cr + sy * sp * sr, cy * cp * sr - sy * sp * cr,
                     cy * sp * cr + sy * cp * sr, sy * cp * cr - cy * sp * sr), axis=1)


def matrix_from_ypr_deg(ypr_deg):
    """Inverse of :func:`ypr_deg_from_matrix`: the FLU rotation matrix."""
    y, p, r = (math.radians(v) for v in ypr_deg)
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    frd = np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])
    return _FLIP @ frd @ _FLIP


PHONE_MASS_KG = 0.195  # the phone geom's mass in sim/models/gimbal.xml


def load_model(model_path=MODEL_PATH, phone_mass_kg=None):
    """The MuJoCo model; ``phone_mass_kg`` puts a heavier or lighter phone (same size) in the clamp, balanced.

    A user balances a gimbal for the phone by sliding it in the clamp: the
    phone's offset from the pitch axis is scaled by default mass / new mass,
    so the payload's first moment about the pitch and roll axes (its
    unbalance) stays what it was; its inertia and the yaw arm's load grow
    with the mass.
    """
    try:
        if phone_mass_kg is None or phone_mass_kg == PHONE_MASS_KG:
            return mujoco.MjModel.from_xml_path(model_path)
        spec = mujoco.MjSpec.from_file(model_path)
        phone = spec.geom("phone")
        k = PHONE_MASS_KG / float(phone_mass_kg)
        phone.pos = [v * k for v in phone.pos]
        phone.mass = float(phone_mass_kg)
        return spec.compile()
    except ValueError as exc:
        raise ValueError("cannot load the gimbal model %s: %s" % (model_path, exc)) from None


def _mujoco_addresses():
    """(``mj_step``, ``&mjcb_time``) in the MuJoCo library the ``mujoco`` module loaded; (0, 0) if not found."""
    import ctypes
    import glob

    here = os.path.dirname(mujoco.__file__)
    for pattern in ("libmujoco.so*", "libmujoco*.dylib", "mujoco*.dll"):
        for path in sorted(glob.glob(os.path.join(here, pattern))):
            try:
                lib = ctypes.CDLL(path)
                step = ctypes.cast(lib.mj_step, ctypes.c_void_p).value or 0
                timer = ctypes.addressof(ctypes.c_void_p.in_dll(lib, "mjcb_time"))
            except (OSError, AttributeError, ValueError):
                continue
            if step and timer:
                return step, timer
    return 0, 0


class GimbalPlant:
    def __init__(self, model_path=MODEL_PATH, timestep_s=None, phone_mass_kg=None):
        self.model = load_model(model_path, phone_mass_kg)
        if timestep_s is not None:
            self.model.opt.timestep = timestep_s
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.timestep_s = float(m.opt.timestep)
        self._qadr = [int(m.jnt_qposadr[m.joint(n).id]) for n in JOINTS]
        self._dadr = [int(m.jnt_dofadr[m.joint(n).id]) for n in JOINTS]
        self._hand_mocap = int(m.body_mocapid[m.body("hand").id])
        self._handle_body = m.body("handle").id
        self._payload_body = m.body("payload").id
        self._cam_site = m.site("camera").id
        self._gyro_adr = int(m.sensor("imu_gyro").adr[0])
        self._accel_adr = int(m.sensor("imu_accel").adr[0])
        # the second IMU, on the handle (firmware HAL handle_imu_read)
        self._handle_gyro_adr = int(m.sensor("handle_gyro").adr[0])
        self._handle_accel_adr = int(m.sensor("handle_accel").adr[0])
        self._free_qadr = int(m.jnt_qposadr[m.joint("handle_free").id])
        # views into MjData, made once: each `data.qpos` access builds a new array object
        d = self.data
        self._qpos = d.qpos
        self._qvel = d.qvel
        self._qfrc = d.qfrc_applied
        self._sensordata = d.sensordata
        self._hand_pos = d.mocap_pos[self._hand_mocap]
        self._hand_quat = d.mocap_quat[self._hand_mocap]
        self._cam_xmat = d.site_xmat[self._cam_site]
        self._handle_xmat = d.xmat[self._handle_body]
        if cython.compiled:
            # mj_step called from C on the model's and data's own structs: the binding's call costs
            # 0.4 us of the 6 us step (the same function on the same memory, so the same results);
            # and without MuJoCo's profiling timers (mjcb_time, which the binding sets: about ten
            # clock reads a step, 0.8 us), which only fill data.timer, unused here
            step, timer = _mujoco_addresses()
            self._mj_step = cython.cast(mj_step_fn, cython.cast(cython.size_t, step))  # noqa: F821 - plant.pxd
            self._mjcb_time = cython.cast(cython.pointer(cython.p_void), cython.cast(cython.size_t, timer))
            self._m = cython.cast(cython.p_void, cython.cast(cython.size_t, self.model._address))
            self._d = cython.cast(cython.p_void, cython.cast(cython.size_t, self.data._address))
        self.set_hand_pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], teleport=True)

    @property
    def time_s(self):
        return float(self.data.time)

    def set_hand_pose(self, pos_m, ypr_deg, teleport=False):
        """Move the hand (mocap); ``teleport`` also puts the handle there at rest (for the start)."""
        d = self.data
        pos = (pos_m[0], pos_m[1], HAND_HEIGHT_M + pos_m[2])
        quat = quat_from_ypr_deg(ypr_deg)
        d.mocap_pos[self._hand_mocap] = pos
        d.mocap_quat[self._hand_mocap] = quat
        if teleport:
            a = self._free_qadr
            d.qpos[a:a + 3] = pos
            d.qpos[a + 3:a + 7] = quat
            d.qvel[:] = 0.0
            mujoco.mj_forward(self.model, d)

    def hand_mocap_block(self, poses):
        """(N, 7) mocap position and quaternion rows for (N, 6) hand poses [x, y, z, yaw, pitch, roll]."""
        poses = np.asarray(poses, dtype=float)
        pos = poses[:, 0:3] + (0.0, 0.0, HAND_HEIGHT_M)
        return np.ascontiguousarray(np.hstack((pos, quats_from_ypr_deg(poses[:, 3:6]))))

    def set_hand_mocap(self, row):
        """Move the hand to one row (7 floats) of :meth:`hand_mocap_block` (the per-tick path)."""
        # element by element: cheaper than any numpy slice copy at this size, and C stores when compiled
        p = self._hand_pos
        q = self._hand_quat
        p[0] = row[0]
        p[1] = row[1]
        p[2] = row[2]
        q[0] = row[3]
        q[1] = row[4]
        q[2] = row[5]
        q[3] = row[6]

    def set_joints_rad(self, angles_rad):
        for k, a in enumerate(angles_rad):
            self.data.qpos[self._qadr[k]] = a
        mujoco.mj_forward(self.model, self.data)

    def step(self, torques_nm):
        """One timestep with the joint torques [yaw, pitch, roll] (N*m)."""
        self.step3(torques_nm[0], torques_nm[1], torques_nm[2])

    def step3(self, tau_yaw_nm, tau_pitch_nm, tau_roll_nm):
        """:meth:`step` with the three torques as arguments (the per-tick path)."""
        qfrc = self._qfrc
        dadr = self._dadr
        qfrc[dadr[0]] = tau_yaw_nm
        qfrc[dadr[1]] = tau_pitch_nm
        qfrc[dadr[2]] = tau_roll_nm
        if cython.compiled and self._mj_step != cython.NULL:
            timer = self._mjcb_time[0]
            self._mjcb_time[0] = cython.NULL
            self._mj_step(self._m, self._d)
            self._mjcb_time[0] = timer
        else:
            mujoco.mj_step(self.model, self.data)

    def joint_rad(self, axis):
        return float(self._qpos[self._qadr[axis]])

    def joint_rads(self, axis):
        return float(self._qvel[self._dadr[axis]])

    def joint_limits_rad(self, axis):
        jid = self.model.joint(JOINTS[axis]).id
        return tuple(float(v) for v in self.model.jnt_range[jid])

    def sensors(self):
        """All sensor values as one list of floats; addresses in ``sensor_adr``."""
        return self.data.sensordata.tolist()

    def sensor_values(self):
        """:meth:`sensors` for the per-tick models: a list interpreted (one conversion per tick), the
        typed view of MuJoCo's array itself when compiled."""
        return self._sensordata if cython.compiled else self._sensordata.tolist()

    @property
    def sensor_adr(self):
        """(camera gyro, camera accel, handle gyro, handle accel) start indices into :meth:`sensors`."""
        return self._gyro_adr, self._accel_adr, self._handle_gyro_adr, self._handle_accel_adr

    def joint_state(self):
        """([yaw, pitch, roll] rad, [yaw, pitch, roll] rad/s)."""
        qp = self.data.qpos.tolist()
        qv = self.data.qvel.tolist()
        a = self._qadr
        v = self._dadr
        return [qp[a[0]], qp[a[1]], qp[a[2]]], [qv[v[0]], qv[v[1]], qv[v[2]]]

    def joint_state_into(self, angle_rad, rate_rads):
        """:meth:`joint_state` into two arrays of 3 doubles (the per-tick path)."""
        # compiled: the typed views; interpreted: one conversion each, cheaper than six numpy reads
        qp = self._qpos if cython.compiled else self._qpos.tolist()
        qv = self._qvel if cython.compiled else self._qvel.tolist()
        a = self._qadr
        v = self._dadr
        angle_rad[0] = qp[a[0]]
        angle_rad[1] = qp[a[1]]
        angle_rad[2] = qp[a[2]]
        rate_rads[0] = qv[v[0]]
        rate_rads[1] = qv[v[1]]
        rate_rads[2] = qv[v[2]]

    def imu_gyro_rads(self):
        a = self._gyro_adr
        return self.sensors()[a:a + 3]

    def imu_accel_mps2(self):
        a = self._accel_adr
        return self.sensors()[a:a + 3]

    def handle_gyro_rads(self):
        a = self._handle_gyro_adr
        return self.sensors()[a:a + 3]

    def handle_accel_mps2(self):
        a = self._handle_accel_adr
        return self.sensors()[a:a + 3]

    def camera_pose(self):
        """(position_m, rotation FLU 3x3) of the camera site in the world."""
        s = self._cam_site
        return self.data.site_xpos[s].copy(), self.data.site_xmat[s].reshape(3, 3).copy()

    def camera_ypr_deg(self):
        m = self._cam_xmat
        return _ypr_deg(m[0], m[3], m[6], m[7], m[8])

    def handle_ypr_deg(self):
        m = self._handle_xmat
        return _ypr_deg(m[0], m[3], m[6], m[7], m[8])
