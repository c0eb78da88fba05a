# C types for sim/lockstep.py when sim/compiled_sim.py compiles it (Cython's pure-Python mode)
cimport cython

from .angle_sensor cimport AngleSensorModel
from .imu cimport ImuModel
from .link cimport SerialLink
from .motor cimport BldcMotor
from .plant cimport GimbalPlant

cdef double RAD_TO_DEG


@cython.final
cdef class Lockstep:
    cdef public GimbalPlant plant
    cdef public object hal, handle, motors, servos, fw_tick, traces
    cdef public ImuModel imu, handle_imu
    cdef BldcMotor m0, m1, m2
    cdef public SerialLink link_up, link_down
    cdef public AngleSensorModel angle_sensor
    cdef public double peak_torque_nm, dt_s, hold_frac, max_effort
    cdef Py_ssize_t gyro_at, accel_at, handle_gyro_at, handle_accel_at
    cdef public long period_us, tick_count
    cdef long pose_block_start, pose_block_len
    cdef long[:] old_duties
    cdef double[:] angle, rate, torques
    cdef double[:, :] pose_block

    cpdef start(self, fw_tick, long period_us, double hold_frac)
    @cython.locals(sens=double[:])
    cpdef sample_imus(self, double t_s)
    cpdef step_to_tick(self, long end_tick)
    @cython.locals(plant=GimbalPlant, up=SerialLink, sensor=AngleSensorModel, angle=double[:], rate=double[:],
                   torques=double[:], now_us=long, t_s=double, i=long, on=bint)
    cpdef tick(self)
    @cython.locals(tau=double, w=double, old=long[:], j=Py_ssize_t, a=long, b=long, c=long)
    cdef double axis_torque(self, int k, BldcMotor motor, object servo_us, object d, bint on)
    @cython.locals(plant=GimbalPlant, torques=double[:], angle=double[:], k=int)
    cpdef trace(self)
    cpdef next_pose_block(self)
