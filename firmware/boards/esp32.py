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
========  ===========================  ============================

The ESP32's LEDC has 16 channels, so 9 BLDC phases and 3 servos fit; BLDC
and servo outputs use different LEDC timers (25 kHz and 50 Hz).

    from firmware.boards.esp32 import Board
    from firmware.app import Gimbal
    Gimbal(Board()).run_forever()
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


class Board(PwmBoard):
    board_id = BOARD_ESP32

    def __init__(self, link="usb", baud=115200, imu_addr=0x68, handle_imu_addr=base.HANDLE_IMU_ADDR):
        if link not in ("usb", "uart"):
            raise ValueError("link must be 'usb' or 'uart', got %r" % (link,))
        i2c = machine.I2C(I2C_ID, sda=machine.Pin(I2C_SDA), scl=machine.Pin(I2C_SCL), freq=I2C_HZ)
        enable = machine.Pin(ENABLE_PIN, machine.Pin.OUT, value=0)
        port = StdioLink() if link == "usb" else UartLink(
            machine.UART(UART_ID, baudrate=baud, tx=UART_TX, rx=UART_RX, timeout=0))
        # the optional handle IMU shares the bus; if none answers, handle_imu_read reports it absent
        # (never the camera's own chip: with both at one address the "handle" would be the camera)
        handle = MPU6050(i2c, handle_imu_addr) if handle_imu_addr not in (None, imu_addr) else None
        super().__init__(MPU6050(i2c, imu_addr), _bldc, _servo, enable, port, FileStore(), handle)


def _bldc(axis):
    pwms = []
    for pin in PHASE_PINS[axis]:
        pwms.append(machine.PWM(machine.Pin(pin), freq=BLDC_PWM_HZ, duty_u16=0))
    return pwms


def _servo(axis):
    return machine.PWM(machine.Pin(SERVO_PINS[axis]), freq=SERVO_PWM_HZ, duty_ns=0)
