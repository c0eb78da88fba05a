# C types for sim/angle_sensor.py when sim/compiled_sim.py compiles it (Cython's pure-Python mode)
cimport cython

cdef double _TWO_PI


@cython.final
cdef class AngleSensorModel:
    cdef public object params
    cdef public long cpr
    cdef object _rng
    cdef double _noise
    cdef long _direction
    cdef double _offset[3]
    cdef double _sample_s[3]

    @cython.locals(angle=double, turns=double, c=double, v=long)
    cpdef long read(self, int axis, double joint_rad, double joint_rads)
