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
                   "sim/scenarios/track-crossing.toml"):
        assert "opensteady/" + module in wheel_names, module
    assert not [n for n in wheel_names if n.startswith("opensteady/tests/") or n.startswith("tests/")]


def test_the_console_script_points_into_the_namespace(wheel):
    (entry,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry).decode()
    assert "opensteady = opensteady.host.cli:main" in text
