"""Board entry point: ``opensteady flash`` copies this file to the board's root as main.py.

It picks the board module for ``sys.platform``, starts the gimbal on the USB
serial link, and returns to the REPL when the loop is stopped (three Ctrl-C
while no host is connected; see docs/firmware.md).
"""

import sys


def _board():
    from firmware.boards.base import FileStore, config_sensor_kinds
    from firmware.config import Config

    # the rotor sensors the saved config names (<axis>_sensor) decide which sensor buses come alive
    cfg, _ok = Config.from_bytes(FileStore().load())
    sensors = config_sensor_kinds(cfg)
    if sys.platform == "rp2":
        from firmware.boards import rp2

        return rp2.Board(link="usb", sensors=sensors)
    if sys.platform == "esp32":
        from firmware.boards import esp32

        return esp32.Board(link="usb", sensors=sensors)
    return None


def main():
    board = _board()
    if board is None:
        print("opensteady: no board module for platform %r" % (sys.platform,))
        return
    import micropython

    from firmware.app import Gimbal

    gimbal = Gimbal(board)
    gimbal.link.escape_to_repl = True
    micropython.kbd_intr(-1)  # 0x03 is data on the binary link
    try:
        gimbal.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        micropython.kbd_intr(3)
        print("opensteady: stopped, REPL available")


if __name__ == "__main__":
    main()
