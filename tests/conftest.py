"""Suite-wide settings: no test may depend on how fast the machine is.

Hypothesis' per-example deadline is a wall-clock assertion (200 ms by
default); a busy machine would fail it, so it is off for every test.
"""

from hypothesis import settings

settings.register_profile("opensteady", deadline=None)
settings.load_profile("opensteady")
