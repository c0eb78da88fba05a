"""Raspberry Pi Pico (RP2040) board: the only place, with esp32.py, that imports ``machine``.

Pin map (GP numbers; see docs/firmware.md for the wiring table):

========  ===========================  ============================
function  pins                         notes
========  ===========================  ============================
I2C0      SDA GP4, SCL GP5             MPU-6050 at 0x68, 400 kHz; optional
                                       handle MPU-6050 at 0x69 (AD0 to 3V3)
yaw       GP6, GP7, GP8                DRV8313 IN1..IN3 (PWM 3A 3B 4A)
pitch     GP9, GP10, GP11              DRV8313 IN1..IN3 (PWM 4B 5A 5B)
roll      GP12, GP13, GP14             DRV8313 IN1..IN3 (PWM 6A 6B 7A)
enable    GP15                         all three DRV8313 EN1-3 + nSLEEP
servos    GP16 yaw, GP17 pitch, GP18   50 Hz, own PWM slices 0/1
link      USB serial (default), or     UART0 TX GP0, RX GP1
AS5048A   SPI0 SCK GP2, MOSI GP3,      rotor sensors (``sensors="as5048a"``),
          MISO GP20; CS yaw GP19,      SPI mode 1, 10 MHz
          pitch GP21, roll GP22
AS5600    yaw I2C1 SDA GP26 SCL GP27;  rotor sensors (``sensors="as5600"``):
          pitch SDA GP2 SCL GP3, roll  one 0x36 chip per bus; pitch and roll
          SDA GP20 SCL GP21            on SoftI2C, 400 kHz
light     GP20                         fill light MOSFET gate (PWM 2A, a slice
                                       of its own, 20 kHz); only without rotor
                                       sensors, which take GP20
========  ===========================  ============================

The three phase pins of an axis sit on PWM slices that no servo pin shares,
so a BLDC axis (25 kHz) and a servo axis (50 Hz) can be mixed freely.

    from firmware.boards.rp2 import Board
    from firmware.app import Gimbal
    Gimbal(Board()).run_forever()
    Gimbal(Board(sensors="as5048a")).run_forever()   # an AS5048A on every motor (docs/firmware.md)

The two sensor kinds share GP2, GP3, GP20 and GP21, so a board wires one kind.
Every other PWM channel carries a phase or a servo (or shares a slice, and so
a frequency, with one), so with rotor sensors there is no pin left for the
fill light: MSG_LIGHT is then answered NACK not_fitted.
"""

import machine

from ..hal import BOARD_RP2
from ..imu import MPU6050
from . import base
from .base import BLDC_PWM_HZ, SERVO_PWM_HZ, FileStore, PwmBoard, StdioLink, UartLink

I2C_ID = 0
I2C_SDA = 4
I2C_SCL = 5
I2C_HZ = 400000
PHASE_PINS = ((6, 7, 8), (9, 10, 11), (12, 13, 14))  # yaw, pitch, roll
ENABLE_PIN = 15
SERVO_PINS = (16, 17, 18)
UART_ID = 0
UART_TX = 0
UART_RX = 1
LIGHT_PIN = 20  # PWM slice 2 channel A: no motor or servo shares slice 2
AS5048A_SPI_ID = 0
AS5048A_SCK = 2
AS5048A_MOSI = 3
AS5048A_MISO = 20
AS5048A_CS = (19, 21, 22)  # yaw, pitch, roll
AS5600_BUSES = ((1, 26, 27), (-1, 2, 3), (-1, 20, 21))  # (I2C id, or -1 for SoftI2C; SDA; SCL) per axis


class Board(PwmBoard):
    board_id = BOARD_RP2

    def __init__(self, link="usb", baud=115200, imu_addr=0x68, handle_imu_addr=base.HANDLE_IMU_ADDR, sensors="none"):
        if link not in ("usb", "uart"):
            raise ValueError("link must be 'usb' or 'uart', got %r" % (link,))
        i2c = machine.I2C(I2C_ID, sda=machine.Pin(I2C_SDA), scl=machine.Pin(I2C_SCL), freq=I2C_HZ)
        enable = machine.Pin(ENABLE_PIN, machine.Pin.OUT, value=0)
        port = StdioLink() if link == "usb" else UartLink(machine.UART(UART_ID, baudrate=baud, tx=machine.Pin(UART_TX),
                                                           rx=machine.Pin(UART_RX), timeout=0))
        # the optional handle IMU shares the bus; if none answers, handle_imu_read reports it absent
        # (never the camera's own chip: with both at one address the "handle" would be the camera)
        handle = MPU6050(i2c, handle_imu_addr) if handle_imu_addr not in (None, imu_addr) else None
        angle = base.angle_sensors(machine, base.sensor_kinds(sensors), AS5048A_SPI_ID,
                                   (AS5048A_SCK, AS5048A_MOSI, AS5048A_MISO), AS5048A_CS, AS5600_BUSES)
        super().__init__(MPU6050(i2c, imu_addr), _bldc, _servo, enable, port, FileStore(), handle, angle,
                         light_pin=LIGHT_PIN if sensors == "none" else None, make_light=_light)


def _bldc(axis):
    pwms = []
    for pin in PHASE_PINS[axis]:
        p = machine.PWM(machine.Pin(pin))
        p.freq(BLDC_PWM_HZ)
        p.duty_u16(0)
        pwms.append(p)
    return pwms


def _servo(axis):
    p = machine.PWM(machine.Pin(SERVO_PINS[axis]))
    p.freq(SERVO_PWM_HZ)
    p.duty_ns(0)
    return p


def _light(pin):
    p = machine.PWM(machine.Pin(pin))
    p.duty_u16(0)
    return p
