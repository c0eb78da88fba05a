"""What CPython needs to import firmware modules written for MicroPython.

MicroPython's compiler handles ``const()`` and the ``@micropython.native``
decorator itself; on CPython they become plain no-ops so the same code runs
in the simulator and the tests with identical integer results::

    try:
        import micropython
        from micropython import const
    except ImportError:  # CPython
        from .mpcompat import const, micropython
"""


def const(x):
    return x


class micropython:  # noqa: N801 - stands in for the module of that name
    @staticmethod
    def native(f):
        return f

    @staticmethod
    def viper(f):
        return f

    const = staticmethod(const)
