# C types for sim/motor.py when sim/compiled_sim.py compiles it (Cython's pure-Python mode)
cimport cython

cdef double _SQRT3, _INV_SQRT3


@cython.final
cdef class BldcMotor:
    cdef public object params
    cdef double _i_limit_a, _v_per_count, _pole_pairs, _inv_r, _ke, _kt, _cog_nm, _cog_periods
    cdef public bint enabled
    cdef public double current_a, torque_nm_last

    @cython.locals(cog=double, mean=double, s=double, va=double, vcos=double, theta_rotor=double, sr=double,
                   cr=double, inv_r=double, i_d=double, i_q=double, i_mag=double, tau=double)
    cpdef double torque_nm(self, double duty_a, double duty_b, double duty_c, double rotor_rad, double rotor_rads)
