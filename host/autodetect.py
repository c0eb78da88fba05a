"""Find an OpenSteady board without ``--port``: USB IDs first, then the handshake.

Only serial ports whose USB vendor/product IDs belong to the boards we
support are opened: a Raspberry Pi Pico (RP2040/RP2350, native USB) and the
USB-serial bridges of ESP32 boards. Each candidate must then answer the
OpenSteady version handshake (host.link.Link) before it is used. Ports with
other devices on them (a 3D printer, a modem, an Arduino) are never opened.

    url, version = find_board()          # raises BoardNotFound with what was tried
"""

import logging

from opensteady.host.link import DEFAULT_BAUD, Link, LinkError

log = logging.getLogger(__name__)

# (vendor id, product id or None for any product of that vendor) -> what it is
BOARD_USB_IDS = {
    (0x2E8A, None): "Raspberry Pi Pico / RP2040 / RP2350 (native USB)",
    (0x303A, None): "Espressif ESP32-S2/S3/C3/C6 (native USB)",
    (0x10C4, 0xEA60): "Silicon Labs CP210x bridge (ESP32 dev boards)",
    (0x1A86, 0x7523): "WCH CH340 bridge (ESP32 dev boards)",
    (0x1A86, 0x55D4): "WCH CH9102 bridge (ESP32 dev boards)",
    (0x0403, 0x6010): "FTDI FT2232 bridge (ESP-WROVER-KIT)",
}


class BoardNotFound(LinkError):
    """No port with a known board's USB IDs answered the handshake; ``str()`` says what was tried."""


def board_kind(vid, pid):
    """What a (vid, pid) pair is, or None when it is not a board we support."""
    if vid is None:
        return None
    return BOARD_USB_IDS.get((vid, pid)) or BOARD_USB_IDS.get((vid, None))


def candidate_ports(ports=None):
    """[(device, kind)] of the serial ports that carry a supported board's USB IDs, native USB first."""
    if ports is None:
        from serial.tools import list_ports

        ports = list_ports.comports()
    found = [(p.device, board_kind(p.vid, p.pid)) for p in ports]
    found = [(dev, kind) for dev, kind in found if kind is not None]
    return sorted(found, key=lambda dk: ("native" not in dk[1], dk[0]))


def find_board(ports=None, baud=DEFAULT_BAUD, handshake_timeout_s=1.5):
    """The first candidate port that answers the OpenSteady handshake: (url, version dict)."""
    candidates = candidate_ports(ports)
    if not candidates:
        raise BoardNotFound("no OpenSteady board found: no serial port has the USB IDs of a Pico or an ESP32 "
                            "board. Plug the board in, or give --port (list ports: `opensteady ping --list`).")
    tried = []
    for device, kind in candidates:
        link = Link(device, baud=baud, reconnect=False, handshake_timeout_s=handshake_timeout_s)
        try:
            link.open()
        except LinkError as exc:
            log.info("%s (%s): %s", device, kind, exc)
            tried.append("%s (%s): %s" % (device, kind, exc))
            continue
        version = link.version
        link.close()
        return device, version
    raise BoardNotFound("no OpenSteady board answered. Tried:\n  " + "\n  ".join(tried))
