"""The distribution installs one import package, ``opensteady``, with its data files."""

import subprocess
import sys
import zipfile

import pytest

from tests.micropython import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0 and "No module named" in proc.stderr and "setuptools" in proc.stderr:
        pytest.skip("setuptools is not installed in this environment: cannot build the wheel offline")
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("opensteady-*.whl")
    return zipfile.ZipFile(path)


@pytest.fixture(scope="module")
def wheel_names(wheel):
    return wheel.namelist()


def test_the_wheel_installs_only_the_opensteady_package(wheel_names):
    top = {n.split("/")[0] for n in wheel_names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"opensteady"}


def test_the_wheel_carries_every_subpackage_and_the_simulator_data(wheel_names):
    for module in ("host/cli.py", "vision/types.py", "sim/world.py", "firmware/app.py", "firmware/main.py",
                   "firmware/boards/rp2.py", "firmware/offboard/simpipe.py", "sim/models/gimbal.xml",
                   "sim/scenarios/track-crossing.toml", "sim/lockstep.py", "sim/lockstep.pxd", "sim/imu.pxd"):
        assert "opensteady/" + module in wheel_names, module
    assert not [n for n in wheel_names if n.startswith("opensteady/tests/") or n.startswith("tests/")]


def test_the_console_script_points_into_the_namespace(wheel):
    (entry,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry).decode()
    assert "opensteady = opensteady.host.cli:main" in text


def test_an_unsupported_python_is_refused_by_the_build_backend_naming_the_versions():
    """pip asks the backend for build requirements first: this check ends an install in seconds."""
    import importlib.util

    from packaging.specifiers import SpecifierSet

    spec = importlib.util.spec_from_file_location("build_backend", ROOT / "host" / "build_backend.py")
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    requires = SpecifierSet(tomllib.loads(text)["project"]["requires-python"])
    for minor in range(6, 16):
        message = backend.unsupported_message((3, minor, 0), text)
        assert (message is None) == ("3.%d" % minor in requires), minor
        if message is not None:
            assert "Python 3.9 to 3.12" in message and "this is Python 3.%d" % minor in message
    assert backend.unsupported_message(sys.version_info, text) is None  # the suite runs on a supported one


def test_the_wheel_carries_the_gesture_weights_and_their_notice(wheel_names):
    assert "opensteady/vision/gesture_model.npz" in wheel_names
    assert [n for n in wheel_names if ".dist-info/" in n and n.endswith("/NOTICE")]  # credits for the training data
