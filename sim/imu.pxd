# C types for sim/imu.py when sim/compiled_sim.py compiles it (Cython's pure-Python mode)
cimport cython
from libc.math cimport floor


cdef inline long ifloor(double x) noexcept:
    return <long>floor(x)


@cython.final
cdef class ImuModel:
    cdef public object params
    cdef object _rng, _bias0, _bias_path, _noise_sigma, _walk_sigma, _bias_counts
    cdef double[:, :] _errors
    cdef Py_ssize_t _error_i
    cdef double _period_s, _alpha, _gyro_sigma_dps, _accel_sigma_g, _next_sample_s
    cdef double[:] _filtered
    cdef bint _started
    cdef public object counts
    cdef short[:] _counts
    cdef public long samples

    cpdef update_at(self, double t_s, double[:] sens, Py_ssize_t gyro_at, Py_ssize_t accel_at)
    cdef _next_errors(self)
    @cython.locals(e=double[:], f=double[:], c=short[:], k=int, v=long, ka=double, kg=double, al=double)
    cdef _sample(self, double[:] sens, Py_ssize_t g, Py_ssize_t a)
    cpdef read_into(self, raw)
