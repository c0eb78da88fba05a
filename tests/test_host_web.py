"""The JSON HTTP/WebSocket API over real sockets: validation, token, and commands reaching the simulated tracker."""

import json
import urllib.error
import urllib.request

import pytest

from opensteady.host.control import ControlError, Controls, nudge_point, validate
from opensteady.host.outputs import FrameHub
from opensteady.host.web import WebServer
from tests.served_sim import ServedSim


def call(url, body=None, token=None, method=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def server():
    s = WebServer(Controls(), FrameHub(), port=0).start()
    yield s
    s.close()


@pytest.mark.parametrize("action, body, code, field", [
    ("fly", {}, 404, "action"),
    ("calibration", {"x": 0.5}, 422, "y"),
    ("calibration", {"x": 1.5, "y": 0.5}, 422, "x"),
    ("calibration", {"x": "left", "y": 0.5}, 422, "x"),
    ("calibration", {"x": 0.5, "y": 0.5, "z": 1}, 422, "z"),
    ("lock", [0.5, 0.5], 422, "body"),
    ("nudge", {"yaw_deg": float("nan"), "pitch_deg": 0}, 400, "body"),  # NaN is not JSON
    ("gestures", {"enabled": "yes"}, 422, "enabled"),
    ("gestures", {"mapping": {"wave": "photo"}}, 422, "mapping.wave"),
    ("gestures", {"mapping": {"fist": "fly"}}, 422, "mapping.fist"),
    ("drive", {"yaw_rate_dps": 1000, "pitch_rate_dps": 0}, 422, "yaw_rate_dps"),
    ("tracking", {"on": 1}, 422, "on"),
    ("light", {"level": 4}, 422, "level"),
    ("light", {"level": 1.5}, 422, "level"),
    ("light", {"level": True}, 422, "level"),
    ("light", {}, 422, "level"),
])
def test_bad_requests_get_4xx_naming_the_field(server, action, body, code, field):
    if isinstance(body, dict) and any(isinstance(v, float) and v != v for v in body.values()):
        raw = b'{"yaw_deg": NaN-ish, "pitch_deg": 0}'
        status, reply = call(server.url + "api/" + action, raw)
    else:
        status, reply = call(server.url + "api/" + action, body)
    assert status == code, reply
    assert reply["field"] == field and field.split(".")[0] in reply["error"]


def test_validation_is_shared_by_every_control():
    with pytest.raises(ControlError) as err:
        validate("position", {"yaw_deg": 0.0, "pitch_deg": 120.0})
    assert err.value.field == "pitch_deg" and "-90..90" in str(err.value)
    assert validate("home", {}) == {}


def test_nudge_moves_the_framing_the_way_the_picture_moves():
    x, y = nudge_point((0.5, 0.5), 10.0, 0.0, 70.0, 55.4)
    assert x < 0.5 and y == pytest.approx(0.5)  # turning right: the subject lands left of centre
    x, y = nudge_point((0.5, 0.5), 0.0, 10.0, 70.0, 55.4)
    assert y > 0.5  # tilting up: the subject lands lower
    assert nudge_point((0.5, 0.5), 80.0, 0.0, 70.0, 55.4)[0] == 0.0  # kept inside the frame


def test_off_localhost_needs_a_token():
    with pytest.raises(ValueError, match="token"):
        WebServer(Controls(), FrameHub(), host="0.0.0.0", port=0)
    s = WebServer(Controls(), FrameHub(), host="0.0.0.0", port=0, token="s3cret").start()
    try:
        url = "http://127.0.0.1:%d/" % s.port
        assert call(url + "api/status")[0] == 401
        assert call(url + "api/status", token="wrong")[0] == 401
        status, reply = call(url + "api/pause", {})
        assert status == 401 and reply["field"] == "token"
        assert call(url + "api/status", token="s3cret")[0] == 200
        assert call(url + "api/status?token=s3cret")[0] == 200
        assert call(url + "api/pause", {}, token="s3cret")[0] == 200
    finally:
        s.close()


@pytest.fixture(scope="module")
def sim():
    served = ServedSim("track-crossing", web=True)
    served.step(45)
    yield served
    served.close()


def _act(sim, action, body=None):
    """POST a command, then step the loop once so it is applied."""
    status, reply = call(sim.services.web.url + "api/" + action, body or {})
    assert status == 200, reply
    sim.step(1)
    return call(sim.services.web.url + "api/status")[1]


def test_api_commands_reach_the_tracker(sim):
    status = call(sim.services.web.url + "api/status")[1]
    assert status["mode"] in ("tracking", "deadband") and status["target"]["locked"]
    assert status["attitude"] is not None and status["link"]["connected"]

    s = _act(sim, "calibration", {"x": 0.3, "y": 0.4})
    assert s["calibration_point"] == [0.3, 0.4] and sim.pipeline.calibration_point == (0.3, 0.4)
    s = _act(sim, "nudge", {"yaw_deg": 5.0, "pitch_deg": 0.0})
    assert s["calibration_point"][0] < 0.3
    assert _act(sim, "pause")["mode"] == "paused"
    assert _act(sim, "resume")["mode"] != "paused"
    s = _act(sim, "gestures", {"enabled": False})
    assert s["gestures"]["enabled"] is False and sim.pipeline.config.gesture_actions == {}
    s = _act(sim, "gestures", {"enabled": True, "mapping": {"fist": "photo"}})
    assert s["gestures"]["mapping"]["fist"] == "photo" and sim.pipeline.config.gesture_actions["fist"] == "photo"
    s = _act(sim, "recentre")
    assert "recentre" in sim.services.messages[-1]


def test_api_fill_light_reaches_the_firmware_pwm(sim):
    """POST /api/light -> pipeline -> host loop -> MSG_LIGHT over the simulated UART -> the firmware's PWM duty."""
    hal = sim.rig.gimbal.hal
    assert hal.light_duty_u16 == 0
    s = _act(sim, "light", {"level": 2})
    assert s["light"] == 2 and sim.pipeline.light_level == 2 and "level 2" in sim.services.messages[-1]
    sim.step(3)  # the frame bytes cross the UART, the firmware answers
    assert hal.light_duty_u16 == 32768  # light_level_2_permille = 500
    status = call(sim.services.web.url + "api/status")[1]
    assert status["link"]["light"] == "ok"
    _act(sim, "light", {"level": 0})
    sim.step(3)
    assert hal.light_duty_u16 == 0


def test_websocket_pushes_status_and_takes_commands(sim):
    import asyncio

    import aiohttp

    async def session():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(sim.services.web.url + "api/ws") as ws:
                first = await ws.receive_json(timeout=30)
                await ws.send_json({"action": "calibration", "x": 0.6, "y": 0.5})
                await ws.send_json({"action": "calibration", "x": 2})
                replies = []
                while len(replies) < 2:
                    msg = await ws.receive_json(timeout=30)
                    if msg["type"] == "reply":
                        replies.append(msg)
                return first, replies

    first, replies = asyncio.run(session())
    assert first["type"] == "status" and "mode" in first
    assert replies[0]["ok"] is True
    assert replies[1]["field"] == "x"
    sim.step(1)
    assert sim.pipeline.calibration_point == (0.6, 0.5)


def test_track_serve_prints_where_everything_is(capsys):
    from opensteady.host.cli import main

    code = main(["track", "--sim", "--serve", "--serve-port", "0", "--visca-port", "0", "--headless",
                 "--max-frames", "3", "--no-log"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "control panel: http://127.0.0.1:" in out and "stream.mjpg" in out and "VISCA over IP: udp://127.0.0.1:" in out


def test_track_refuses_to_serve_off_localhost_without_a_token(capsys):
    from opensteady.host.cli import main

    code = main(["track", "--sim", "--serve", "--serve-host", "0.0.0.0", "--serve-port", "0", "--no-visca",
                 "--headless", "--max-frames", "1", "--no-log"])
    assert code == 2 and "--serve-token" in capsys.readouterr().err


def test_track_virtual_camera_without_a_driver_says_how_to_install_one(capsys):
    from opensteady.host.cli import main

    assert main(["track", "--sim", "--virtual-camera", "--virtual-camera-device", "/dev/video-none", "--headless",
                 "--max-frames", "1", "--no-log"]) == 2
    err = capsys.readouterr().err
    assert "no virtual camera available" in err and "v4l2loopback" in err
