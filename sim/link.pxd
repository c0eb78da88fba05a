# C types for sim/link.py when sim/compiled_sim.py compiles it (Cython's pure-Python mode)
cimport cython


@cython.final
cdef class SerialLink:
    cdef public object params
    cdef object _rng
    cdef double _byte_s, _line_free_s
    cdef object _in_flight
    cdef public long bytes_sent, bytes_dropped, bytes_corrupted

    @cython.locals(t_wire_s=double)
    cpdef write(self, data, double t_s)
    cpdef bint has_in_flight(self)
    cpdef bytes read(self, double t_s)
