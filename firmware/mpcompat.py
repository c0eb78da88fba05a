"""What CPython needs to import firmware modules written for MicroPython.

MicroPython's compiler handles ``const()``, the ``@micropython.native``
decorator and viper's ``ptr16``/``ptr32`` casts itself; on CPython they become plain no-ops so the same code runs
in the simulator and the tests with identical integer results::

    try:
        import micropython
        from micropython import const
    except ImportError:  # CPython
        from .mpcompat import const, micropython
"""


def const(x):
    return x


def ptr16(buf):
    """Viper's 16-bit pointer cast: on CPython the buffer itself (an ``array('H')`` indexes the same)."""
    return buf


ptr32 = ptr16  # viper's 32-bit cast, for an ``array('i')`` of values >= 0

class micropython:  # noqa: N801 - stands in for the module of that name
    @staticmethod
    def native(f):
        return f

    @staticmethod
    def viper(f):
        return f

    const = staticmethod(const)
