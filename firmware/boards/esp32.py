"""ESP32 DevKit (ESP32-WROOM-32) board: the only place, with rp2.py, that imports ``machine``.

Pin map (GPIO numbers; see docs/firmware.md for the wiring table). Strapping
pins (0, 2, 12, 15) and flash pins (6-11) are avoided for the motor phases.

========  ===========================  ============================
function  pins                         notes
========  ===========================  ============================
I2C       SDA 21, SCL 22               MPU-6050 at 0x68, 400 kHz; optional
                                       handle MPU-6050 at 0x69 (AD0 to 3V3)
yaw       25, 26, 27                   DRV8313 IN1..IN3 (LEDC PWM)
pitch     32, 33, 14                   DRV8313 IN1..IN3
roll      16, 17, 4                    DRV8313 IN1..IN3
enable    23                           all three DRV8313 EN1-3 + nSLEEP
servos    18 yaw, 19 pitch, 5 roll     50 Hz
link      USB serial (UART0 via the    or UART2 TX 13, RX 34
          DevKit's USB bridge)
AS5048A   SPI2 SCK 18, MOSI 5, MISO    rotor sensors (``sensors="as5048a"``),
          19; CS yaw 15, pitch 0,      SPI mode 1, 10 MHz; on the servo pins:
          roll 2                       no servo outputs then
AS5600    yaw I2C1 SDA 18 SCL 19;      rotor sensors (``sensors="as5600"``):
          pitch SDA 5 SCL 15, roll     one 0x36 chip per bus; pitch and roll
          SDA 0 SCL 2                  on SoftI2C, 400 kHz; no servos then
light     12                           fill light MOSFET gate (LEDC, 20 kHz);
                                       its gate pull-down holds the strap low
========  ===========================  ============================

The ESP32's LEDC has 16 channels, so 9 BLDC phases and 3 servos fit; BLDC
and servo outputs use different LEDC timers (25 kHz and 50 Hz). The
DevKit has no free non-strapping output left for rotor sensors, so they take
the servo pins (a sensed axis is a BLDC axis) and the strapping pins 0, 2
and 15, which the sensors leave at their boot levels: CS idles high (0 and
15 boot high; 2 only matters when entering the ROM bootloader, so unplug an
AS5600 roll sensor, whose pull-up holds it high, to flash MicroPython itself).
GPIO 12 (boot-time flash voltage) drives only the fill light's MOSFET gate,
whose 10 kOhm pull-down holds it low through reset: low is the strap level
for the DevKit's 3.3 V flash, so the light never upsets booting.

    from firmware.boards.esp32 import Board
    from firmware.app import Gimbal
    Gimbal(Board()).run_forever()
    Gimbal(Board(sensors="as5048a")).run_forever()   # an AS5048A on every motor (docs/firmware.md)
"""

import machine

from ..hal import BOARD_ESP32
from ..imu import MPU6050
from . import base
from .base import BLDC_PWM_HZ, SERVO_PWM_HZ, FileStore, PwmBoard, StdioLink, UartLink

I2C_ID = 0
I2C_SDA = 21
I2C_SCL = 22
I2C_HZ = 400000
PHASE_PINS = ((25, 26, 27), (32, 33, 14), (16, 17, 4))  # yaw, pitch, roll
ENABLE_PIN = 23
SERVO_PINS = (18, 19, 5)
UART_ID = 2
UART_TX = 13
UART_RX = 34  # input-only pin: fine for RX
LIGHT_PIN = 12  # the one output left; low at boot (see above)
AS5048A_SPI_ID = 2
AS5048A_SCK = 18
AS5048A_MOSI = 5
AS5048A_MISO = 19
AS5048A_CS = (15, 0, 2)  # yaw, pitch, roll
AS5600_BUSES = ((1, 18, 19), (-1, 5, 15), (-1, 0, 2))  # (I2C id, or -1 for SoftI2C; SDA; SCL) per axis


class Board(PwmBoard):
    board_id = BOARD_ESP32

    def __init__(self, link="usb", baud=115200, imu_addr=0x68, handle_imu_addr=base.HANDLE_IMU_ADDR, sensors="none"):
        if link not in ("usb", "uart"):
            raise ValueError("link must be 'usb' or 'uart', got %r" % (link,))
        i2c = machine.I2C(I2C_ID, sda=machine.Pin(I2C_SDA), scl=machine.Pin(I2C_SCL), freq=I2C_HZ)
        enable = machine.Pin(ENABLE_PIN, machine.Pin.OUT, value=0)
        port = StdioLink() if link == "usb" else UartLink(
            machine.UART(UART_ID, baudrate=baud, tx=UART_TX, rx=UART_RX, timeout=0))
        # the optional handle IMU shares the bus; if none answers, handle_imu_read reports it absent
        # (never the camera's own chip: with both at one address the "handle" would be the camera)
        handle = MPU6050(i2c, handle_imu_addr) if handle_imu_addr not in (None, imu_addr) else None
        kinds = base.sensor_kinds(sensors)
        # the sensor buses use the servo pins: with sensors wired there are no servo outputs
        servo = _servo if kinds == (0, 0, 0) else None
        super().__init__(MPU6050(i2c, imu_addr), _bldc, servo, enable, port, FileStore(), handle,
                         base.angle_sensors(machine, kinds, AS5048A_SPI_ID, (AS5048A_SCK, AS5048A_MOSI, AS5048A_MISO),
                                            AS5048A_CS, AS5600_BUSES), light_pin=LIGHT_PIN, make_light=_light)


def _bldc(axis):
    pwms = []
    for pin in PHASE_PINS[axis]:
        pwms.append(machine.PWM(machine.Pin(pin), freq=BLDC_PWM_HZ, duty_u16=0))
    return pwms


def _servo(axis):
    return machine.PWM(machine.Pin(SERVO_PINS[axis]), freq=SERVO_PWM_HZ, duty_ns=0)


def _light(pin):
    return machine.PWM(machine.Pin(pin), duty_u16=0)
