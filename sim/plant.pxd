# C types for sim/plant.py when sim/compiled_sim.py compiles it (Cython's pure-Python mode)
cimport cython

cdef double _DEG

ctypedef void (*mj_step_fn)(void* m, void* d) noexcept nogil

@cython.locals(yaw=double, pitch=double, roll=double)
cpdef list _ypr_deg(double r0, double r3, double r6, double r7, double r8)


@cython.final
cdef class GimbalPlant:
    cdef public object model, data
    cdef public double timestep_s
    cdef Py_ssize_t _qadr[3]
    cdef Py_ssize_t _dadr[3]
    cdef public Py_ssize_t _hand_mocap, _handle_body, _payload_body, _cam_site
    cdef public Py_ssize_t _gyro_adr, _accel_adr, _handle_gyro_adr, _handle_accel_adr, _free_qadr
    # typed views of MuJoCo's arrays, made once (each `data.qpos` access builds a new array object)
    cdef double[:] _qpos, _qvel, _qfrc, _sensordata, _hand_pos, _hand_quat
    cdef double[:] _cam_xmat, _handle_xmat
    cdef mj_step_fn _mj_step
    cdef void** _mjcb_time
    cdef void* _m
    cdef void* _d

    cpdef set_hand_mocap(self, double[:] row)
    @cython.locals(qfrc=double[:], timer=cython.p_void)
    cpdef step3(self, double tau_yaw_nm, double tau_pitch_nm, double tau_roll_nm)
    cpdef double[:] sensor_values(self)
    @cython.locals(qp=double[:], qv=double[:])
    cpdef joint_state_into(self, double[:] angle_rad, double[:] rate_rads)
    @cython.locals(m=double[:])
    cpdef list camera_ypr_deg(self)
    @cython.locals(m=double[:])
    cpdef list handle_ypr_deg(self)
