"""Finding the board without --port: only ports with a supported board's USB IDs are opened, the handshake decides."""

import pytest
from serial.tools.list_ports_common import ListPortInfo

from opensteady.firmware import protocol as p
from opensteady.host.autodetect import BoardNotFound, board_kind, candidate_ports, find_board
from tests.test_link import PtyDevice


def port(device, vid, pid):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid = vid, pid
    return info


@pytest.fixture
def devices():
    made = []

    def make(**kw):
        dev = PtyDevice(**kw)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.close()


def test_usb_ids():
    assert "Pico" in board_kind(0x2E8A, 0x0005)
    assert "CP210x" in board_kind(0x10C4, 0xEA60)
    assert board_kind(0x10C4, 0x0001) is None  # another Silicon Labs product
    assert board_kind(0x2341, 0x0043) is None  # an Arduino Uno
    assert board_kind(None, None) is None  # a port without USB (ttyS0)


def test_only_board_ports_are_opened_and_the_handshake_decides(devices):
    printer = devices()  # would even answer, but its USB IDs are not a board's: never touched
    silent_bridge = devices(answer=None)  # an ESP32 bridge with other firmware on it
    pico = devices()
    ports = [port(printer.slave_name, 0x1234, 0x5678), port(silent_bridge.slave_name, 0x10C4, 0xEA60),
             port(pico.slave_name, 0x2E8A, 0x0005), port("/dev/ttyS0", None, None)]
    assert [d for d, _ in candidate_ports(ports)] == [pico.slave_name, silent_bridge.slave_name]
    url, version = find_board(ports, handshake_timeout_s=0.5)
    assert url == pico.slave_name and version["protocol_version"] == p.PROTOCOL_VERSION
    assert printer.received == []


def test_a_bridge_found_after_a_silent_one(devices):
    silent = devices(answer=None)  # native USB ports are tried first
    board = devices()
    ports = [port(board.slave_name, 0x1A86, 0x7523), port(silent.slave_name, 0x2E8A, 0x0005)]
    assert [d for d, _ in candidate_ports(ports)] == [silent.slave_name, board.slave_name]
    url, _ = find_board(ports, handshake_timeout_s=0.3)
    assert url == board.slave_name
    assert silent.received  # asked, no answer, moved on


def test_nothing_found_says_what_to_do(devices):
    with pytest.raises(BoardNotFound, match="--port"):
        find_board([port("/dev/ttyS0", None, None)])
    silent = devices(answer=None)
    with pytest.raises(BoardNotFound, match="Tried:") as err:
        find_board([port(silent.slave_name, 0x2E8A, 0x0005)], handshake_timeout_s=0.3)
    assert silent.slave_name in str(err.value) and "nothing answered" in str(err.value)
