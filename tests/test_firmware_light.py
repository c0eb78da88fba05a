"""The fill light on a board's PWM (firmware/light.py over boards/base.PwmBoard), on the real MicroPython VM.

The unix port has no ``machine.PWM``, so the board's PWM factory is the only
stand-in: an object that records the ``freq``/``duty_u16`` calls a Pico's or
ESP32's PWM would get. Everything above it (FillLight, PwmBoard.light_write,
Config) is the flashed code, run on MicroPython and compared with CPython.
"""

from tests.micropython import run_cpython_json, run_micropython_json

CODE = """
import json
from opensteady.firmware.boards.base import PwmBoard
from opensteady.firmware.config import KEY_IDS, Config
from opensteady.firmware.light import FillLight
from opensteady.firmware import protocol as P

calls = []

class Pwm:  # what machine.PWM(machine.Pin(pin)) gives a board module
    def __init__(self, pin):
        if pin > 29:
            raise ValueError("invalid pin")  # as the rp2 port says for a pin it does not have
        self.pin = pin
        calls.append(["new", pin])
    def freq(self, hz):
        calls.append(["freq", self.pin, hz])
    def duty_u16(self, d):
        calls.append(["duty", self.pin, d])

board = PwmBoard(None, None, None, None, None, None, light_pin=20, make_light=Pwm)
light = FillLight(board)
cfg = Config()
light.configure(cfg)
out = {"boot": list(calls), "levels": []}
for level in (1, 2, 3, 0, 7):
    del calls[:]
    out["levels"].append([light.set_level(level), list(calls)])
light.set_level(3)
del calls[:]
moved = cfg.copy()
moved.set(KEY_IDS["light_pin"], 22)
light.configure(moved)
out["moved"] = list(calls)
del calls[:]
bad = cfg.copy()
bad.set(KEY_IDS["light_pin"], 40)
light.configure(bad)
out["bad_pin"] = [light.fitted, light.set_level(1), list(calls)]
none = FillLight(PwmBoard(None, None, None, None, None, None))
none.configure(cfg)
out["no_light"] = [none.fitted, none.set_level(2)]
print(json.dumps(out))
"""


def test_fill_light_pwm_on_micropython_matches_cpython():
    mp = run_micropython_json(CODE)
    cp = run_cpython_json(CODE)
    assert mp == cp
    from opensteady.firmware import protocol as P

    # at boot: the pin map's pin (GP20), 20 kHz, dark
    assert mp["boot"] == [["new", 20], ["freq", 20, 20000], ["duty", 20, 0]]
    # levels: only the duty changes (frequency set once); 7 is refused and writes nothing
    assert mp["levels"] == [[P.ACK_OK, [["duty", 20, 13107]]], [P.ACK_OK, [["duty", 20, 32768]]],
                            [P.ACK_OK, [["duty", 20, 65535]]], [P.ACK_OK, [["duty", 20, 0]]],
                            [P.NACK_OUT_OF_RANGE, []]]
    # the config moves the light to GP22: the old pin goes dark, the new one lights at the level in force
    assert mp["moved"] == [["duty", 20, 0], ["duty", 20, 0], ["new", 22], ["freq", 22, 20000], ["duty", 22, 65535]]
    # a pin the chip cannot drive: not fitted, never an exception
    assert mp["bad_pin"][0] is False and mp["bad_pin"][1] == P.NACK_NOT_FITTED
    assert mp["no_light"] == [False, P.NACK_NOT_FITTED]
