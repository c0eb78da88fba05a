"""One host loop for every path, and imports that point one way.

- ``opensteady sim`` and ``opensteady track --sim`` run the same loop
  (host/loop.py) on the same simulated rig, so they print the same metrics;
- the loop talks to the simulated firmware the way it talks to a board:
  handshake, mode request, heartbeats and telemetry through host.link;
- nothing in sim/ imports the host application; vision and firmware import
  neither; sim/ imports vision only where it finds the face in a photo.
"""

import ast
import json
import pathlib

import pytest

from opensteady.firmware import protocol as p
from opensteady.host.simrig import TIMING_KEYS
from opensteady.sim.scenario import load_scenario, scenario_path
from tests.micropython import ROOT
from tests.test_host_track import json_lines, opensteady


def _short_scenario(tmp_path, name, seconds):
    text = pathlib.Path(scenario_path(name)).read_text()
    assert "\nseconds = 10.0\n" in text
    path = tmp_path / ("%s-short.toml" % name)
    path.write_text(text.replace("\nseconds = 10.0\n", "\nseconds = %s\n" % seconds))
    return str(path)


@pytest.mark.slow
def test_sim_and_track_sim_print_the_same_metrics(tmp_path):
    scenario = _short_scenario(tmp_path, "track-crossing", 3.5)
    sim = opensteady("sim", "--scenario", scenario, "--seed", "3", "--json", "--no-progress")
    assert sim.returncode == 0, sim.stderr[-2000:]
    a = json.loads(sim.stdout.splitlines()[-1])
    track = opensteady("track", "--sim", "--scenario", scenario, "--seed", "3", "--headless", "--json", "--no-log")
    assert track.returncode == 0, track.stderr[-2000:]
    b = json_lines(track.stdout)[-1]["sim"]
    assert a["frames"] > 30 and a["tracking_rms_frac"] is not None
    assert abs(a["tracking_rms_frac"] - b["tracking_rms_frac"]) <= 1e-6
    timing = TIMING_KEYS
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}


def test_stabilize_run_keeps_the_firmware_fed_with_heartbeats_alone():
    """No camera: the loop only polls the gimbal; Link's heartbeats keep the failsafe quiet, on simulated time."""
    from opensteady.host.simrig import run_scenario

    m = run_scenario(load_scenario("stabilize-still", overrides={"seconds": 2.5, "warmup_s": 1.5})).metrics
    assert m["frames"] == 0 and m["mode_reached"]
    assert m["faults"] == []  # no link_lost: heartbeats every 100 ms
    assert 18 <= m["heartbeats_sent"] <= 26  # 2.5 s at 10 Hz, less the mode requests that count as traffic
    assert m["telemetry_frames"] > 50


def test_loading_the_firmware_code_is_not_timed_as_the_run(monkeypatch):
    """A first compiled run builds the firmware (about a minute): load_seconds, never the realtime factor."""
    from opensteady.host import simrig
    from opensteady.sim.firmware_runner import load_code

    clock = {"s": 1000.0}  # a stepped stand-in for the wall clock: only loading moves it
    monkeypatch.setattr(simrig.time, "perf_counter", lambda: clock["s"])

    def slow_load(mode):
        load_code(mode)  # the real import, then the stand-in for a build's minute
        clock["s"] += 60.0

    monkeypatch.setattr(simrig, "load_code", slow_load)
    m = simrig.run_scenario(load_scenario("stabilize-still", overrides={"seconds": 0.5, "warmup_s": 0.2})).metrics
    assert m["load_seconds"] == 60.0 and m["wall_seconds"] == 0.0


def test_the_rig_handshakes_like_a_board_on_simulated_time():
    from opensteady.host.simrig import open_rig

    rig, pipeline, mount = open_rig(load_scenario("stabilize-still"))
    try:
        mount.open()  # version request, answered by the simulated firmware through the simulated UART
        link = mount.backend.link
        assert link.version["protocol_version"] == p.PROTOCOL_VERSION
        assert 0 < rig.clock() < 0.05  # the handshake took simulated time, not wall time
    finally:
        mount.close(rig.clock())
        rig.close()


def test_the_loop_polls_the_gimbal_between_frames_so_telemetry_is_placed_on_the_host_clock_to_a_poll():
    """While the loop waits for a frame it polls the gimbal every poll_interval_s (2 ms), and host.link stamps each
    telemetry frame when its first byte came; so the device-to-host clock offset it learns is the simulated UART's
    fixed latency plus at most a poll, whatever the telemetry frame's 3.6 ms on the wire. (Polled once per 20 ms
    wait, as before, it came out 3.4 ms later here, and 7 ms in the tracking scenarios.)"""
    from opensteady.host.loop import POLL_INTERVAL_S, HostLoop
    from opensteady.host.simrig import open_rig

    rig, pipeline, mount = open_rig(load_scenario("stabilize-still"))
    try:
        mount.open()
        loop = HostLoop(rig.camera(), pipeline, mount, clock=rig.clock)
        while rig.clock() < 1.0:
            assert loop.step() is None  # no camera in this scenario: only the gimbal is polled
        latency_s = rig.scenario.link.latency_s
        assert latency_s <= mount.history.clock.offset_s <= latency_s + POLL_INTERVAL_S
        # and the firmware's VERSION told the host how far its attitude lags t_us: the IMU model's filter delay
        assert mount.backend.attitude_delay_s == pytest.approx(rig.gimbal.imu.delay_s, abs=1e-6)
        assert 0.003 < mount.backend.attitude_delay_s < 0.004
    finally:
        mount.close(rig.clock())
        rig.close()


def test_waiting_on_a_rig_that_films_nothing_is_time_passing_to_the_deadline():
    """No camera (a stabilise scenario): each wait for a frame runs the world to its deadline and returns None,
    never past the scenario's end; a run reports the same metrics whether the cyclic GC was on or off before it,
    keeps it off while it runs, and leaves it as it found it."""
    import gc

    from opensteady.host.simrig import SimRig, run_scenario

    rig = SimRig(load_scenario("stabilize-still", overrides={"seconds": 0.05, "warmup_s": 0.01}))
    try:
        assert rig.next_frame(0.002) is None and rig.gimbal.tick_count == 2
        assert rig.next_frame(0.0) is None and rig.gimbal.tick_count == 3  # at least one tick a wait
        assert rig.next_frame(1.0) is None and rig.gimbal.tick_count == rig.end_tick == 50 and rig.ended
    finally:
        rig.close()

    class Stream:
        def __init__(self):
            self.gc_on = set()

        def write(self, text):
            if text.startswith("\r"):  # the progress bar, drawn while the run goes on
                self.gc_on.add(gc.isenabled())

        def flush(self):
            pass

    scenario = load_scenario("stabilize-still", overrides={"seconds": 1.0, "warmup_s": 0.5})
    runs = []
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            stream = Stream()
            runs.append(run_scenario(scenario, progress=True, progress_stream=stream).metrics)
            assert gc.isenabled() == enabled and stream.gc_on == {False}
        finally:
            gc.enable()
    timing = TIMING_KEYS
    a, b = ({k: v for k, v in m.items() if k not in timing} for m in runs)
    assert a == b and a["telemetry_frames"] > 20


def test_host_split_replays_the_same_world_without_the_host():
    """bench: host_split's figures rest on the replay: the host's calls into the world, made again with no host,
    give the same ticks, attitude and duties; and it leaves the classes it instruments as they were."""
    from opensteady.host import simrig
    from opensteady.host.mount import Mount
    from opensteady.host.simbench import host_split
    from opensteady.sim.world import SimGimbal

    before = (SimGimbal.step_to, SimGimbal.write, SimGimbal.read, simrig.open_rig, Mount.open,
              simrig.ScenarioRecorder.result)
    split = host_split("inprocess", "stabilize-walking", seconds=2.5)
    assert split["same_world"] and split["host_calls"] > 1000  # a step_to and a read every 2 ms poll
    assert split["startup_s"] > 0 and split["world_replayed_s"] > 0 and split["result_s"] > 0
    assert (SimGimbal.step_to, SimGimbal.write, SimGimbal.read, simrig.open_rig, Mount.open,
            simrig.ScenarioRecorder.result) == before


# --- imports ------------------------------------------------------------------------

PACKAGES = ("host", "vision", "sim", "firmware")


def _imports(path):
    """Every module a file imports, at any depth, relative imports resolved within opensteady."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ["opensteady", *path.relative_to(ROOT).parent.parts]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            out.append((str(node.args[0].value), node.lineno))
    return out


def _layer(module):
    parts = module.split(".")
    if parts[0] == "opensteady" and len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    if parts[0] in PACKAGES:  # a bare top-level import would bypass the namespace
        return parts[0]
    return None


def _violations(package, allowed):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module, line in _imports(path):
            layer = _layer(module)
            if layer is not None and layer != package and not allowed(layer, path):
                bad.append("%s:%d imports %s" % (path.relative_to(ROOT), line, module))
    return bad


def test_imports_point_one_way():
    # host -> sim -> firmware; host -> vision; sim -> vision only to find the face in a photo
    assert _violations("sim", lambda layer, path: layer == "firmware"
                       or (layer == "vision" and path.name == "world.py")) == []
    assert _violations("vision", lambda layer, path: False) == []
    assert _violations("firmware", lambda layer, path: False) == []


def test_sim_never_names_the_host_application():
    # also catches a module name built in a string for importlib
    hits = [str(path.relative_to(ROOT)) for path in (ROOT / "sim").rglob("*.py")
            if "opensteady.host" in path.read_text() or "from host" in path.read_text()]
    assert hits == []


# --- time is passed in ----------------------------------------------------------------

class FakeClock:
    """Seconds that pass only when the code under test sleeps."""

    def __init__(self):
        self.t_s = 100.0
        self.sleeps = []

    def __call__(self):
        return self.t_s

    def sleep(self, s):
        self.sleeps.append(s)
        self.t_s += s


def test_a_paced_video_plays_on_the_clock_it_is_given(tmp_path):
    from opensteady.host.capture import VideoFileSource
    from opensteady.host.track_bench import write_astronaut_video

    path = write_astronaut_video(tmp_path / "five.avi", 5, fps=20.0)
    clock = FakeClock()
    source = VideoFileSource(str(path), paced=True, clock=clock, sleep=clock.sleep)
    source.open()
    frames = [source.read() for _ in range(3)]
    clock.t_s += 0.2  # the caller was slow: the next frame is already late, so no wait
    frames.append(source.read())
    source.close()
    assert [f.t_s for f in frames] == [0.0, 0.05, 0.1, 0.15]
    assert clock.sleeps == pytest.approx([0.05, 0.05])
