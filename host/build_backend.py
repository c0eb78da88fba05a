"""PEP 517 build backend: setuptools' own, after a check that this Python can run OpenSteady.

pyproject.toml names it (``backend-path = ["host"]``); pip imports it from this
folder while building, before anything is installed. Nothing imports it at run time.

pip checks a local project's ``requires-python`` only after it has resolved
the dependencies. On an unsupported Python (3.13, say) ``pip install -e .``
would first try to build numpy < 2 from source, for minutes, before saying
the version is wrong. pip asks the backend for the build requirements first
of all, so the check here fails within seconds, naming the versions that work.

The supported range is read from ``requires-python`` in pyproject.toml, so it
is written in one place.
"""

import os
import re
import sys

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every PEP 517 hook; some are wrapped below)

PYPROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "pyproject.toml")


def supported_minors(pyproject_text):
    """(lowest, highest) supported 3.x minor version from ``requires-python = ">=3.A,<3.B"``."""
    match = re.search(r'^requires-python\s*=\s*">=3\.(\d+),\s*<3\.(\d+)"', pyproject_text, re.M)
    if match is None:
        raise RuntimeError("pyproject.toml: requires-python must read \">=3.A,<3.B\" for host/build_backend.py to check it")
    return int(match.group(1)), int(match.group(2)) - 1


def unsupported_message(version_info, pyproject_text):
    """None on a supported Python, else the message that says which versions work."""
    lowest, highest = supported_minors(pyproject_text)
    if version_info[0] == 3 and lowest <= version_info[1] <= highest:
        return None
    return ("OpenSteady needs Python 3.%d to 3.%d (MediaPipe 0.10.21, the last release that ships its models, "
            "has no wheels for other versions); this is Python %d.%d. Make the venv with a supported "
            "interpreter, for example: python3.%d -m venv .venv"
            % (lowest, highest, version_info[0], version_info[1], highest))


def _check():
    with open(PYPROJECT, encoding="utf-8") as f:
        message = unsupported_message(sys.version_info, f.read())
    if message:
        raise SystemExit("error: " + message)


def get_requires_for_build_wheel(config_settings=None):
    _check()
    return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings=None):
    _check()
    return _setuptools.get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _check()
    return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    _check()
    return _setuptools.prepare_metadata_for_build_editable(metadata_directory, config_settings)
