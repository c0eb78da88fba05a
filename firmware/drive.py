"""Motor outputs: what drives each axis (three BLDC phases or a hobby servo) and the writes to the HAL.

By default the motors run open loop, as in STorM32, BruGi and EvvGC: each
tick the commanded joint angle of every axis (``AxisController.joint_udeg``)
becomes three BLDC duties (motor.bldc_duties, sinusoidal or SVPWM) or one
servo pulse (motor.servo_pulse_us). An axis on the closed-loop drive whose
rotor was read this tick (``FocDrive.closed``, firmware/foc.py) gets its
controller's effort as a torque instead. Off means every output silent and the HAL's enable
off.

    drive = MotorDrive(hal)
    drive.configure(cfg)     # drivers, pole pairs, power, direction, servo scale, commutation
    drive.enable()
    drive.write(axes, foc)   # each tick: the three AxisControllers -> HAL (foc: a FocDrive)
    drive.disable()

Allocates nothing per tick: the duties go into one preallocated ``array('H')`` of nine
(axis i's phases at 3i..3i+2, written through a memoryview of its three) and reach the HAL in one
``bldc_write_axes`` call for the BLDC axes.
"""

from array import array

from .config import DRIVER_BLDC, DRIVER_SERVO
from .motor import bldc_amplitude, bldc_duties, servo_pulse_us

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython, ptr32  # type: ignore[assignment,no-redef]

_BLDC = const(0)  # config.DRIVER_BLDC (imported names are not constants to viper)
_SERVO = const(1)  # config.DRIVER_SERVO
# MotorDrive._packed: per axis _W words, each >= 0 (viper's ptr32 loads are unsigned on 64-bit ports)
_W = const(4)
_P_DRIVER = const(0)
_P_POLE_PAIRS = const(1)
_P_MOTOR_NEG = const(2)  # 1: motor_dir < 0
_P_AMP = const(3)
# AxisController.packed (firmware/control.py): the commanded joint's word, stored + OFF
_S_JOINT = const(11)  # control.S_JOINT
_OFF = const(0x20000000)  # control.OFF


class MotorDrive:
    def __init__(self, hal):
        self.hal = hal
        self.on = False
        self.svpwm = False
        self.driver = [0, 0, 0]
        self.pole_pairs = [0, 0, 0]
        self.amp = [0, 0, 0]  # sine amplitude, duty counts
        self.motor_dir = [0, 0, 0]
        self.servo_q8 = [0, 0, 0]  # servo us per deg, Q8
        self.duty = [0, 0, 0]  # FocDrive.calibrate's output
        self.duties = array("H", [0] * 9)  # write()'s output: bldc_write_axes
        m = memoryview(self.duties)
        self._phases = (m[0:3], m[3:6], m[6:9])  # axis i's three duties, for bldc_duties / foc.duties
        # what write() reads each tick, packed from the lists above by configure(): one ptr32 load a
        # value instead of an attribute and a list subscript (about 40 ns each)
        self._packed = array("i", [0] * (3 * _W))

    def configure(self, cfg):
        a = cfg.axis
        self.svpwm = cfg.get("commutation") == 1
        for i in range(3):
            driver = a(i, "driver")
            if self.on and driver != self.driver[i]:
                # an axis switched to another driver at run time: silence the old output
                self.silence(i)
            self.driver[i] = driver
            self.pole_pairs[i] = a(i, "pole_pairs")
            self.amp[i] = bldc_amplitude(a(i, "power_permille"), self.svpwm)
            self.motor_dir[i] = a(i, "motor_dir")
            self.servo_q8[i] = int(a(i, "servo_us_per_deg") * 256)
            p = self._packed
            k = i * _W
            p[k + _P_DRIVER] = driver
            p[k + _P_POLE_PAIRS] = self.pole_pairs[i]
            p[k + _P_MOTOR_NEG] = 1 if self.motor_dir[i] < 0 else 0
            p[k + _P_AMP] = self.amp[i]

    def enable(self):
        self.on = True
        self.hal.motors_enable(True)

    def disable(self):
        self.on = False
        for i in range(3):
            self.silence(i)
        self.hal.motors_enable(False)

    def silence(self, i):
        driver = self.driver[i]
        if driver == DRIVER_BLDC:
            self.hal.bldc_write(i, 0, 0, 0)
        elif driver == DRIVER_SERVO:
            self.hal.servo_write(i, 0)

    @micropython.viper
    def write(self, axes, foc):
        """Drive each axis: to its controller's joint angle, or (``foc.closed``) with its effort as a torque."""
        hal = self.hal
        p = ptr32(self._packed)
        svpwm = self.svpwm  # an object: bldc_duties and duties take it as an int argument
        phases = self._phases
        closed = foc.closed
        bldc = 0  # bit i: axis i's duties are in self.duties
        for i in range(3):
            k = i * _W
            drv = p[k + _P_DRIVER]
            if drv == _BLDC:
                amp = p[k + _P_AMP]
                d = phases[i]
                if closed[i]:
                    foc.duties(i, axes[i], amp, svpwm, d)
                else:
                    bldc_duties(ptr32(axes[i].packed)[_S_JOINT] - _OFF, p[k + _P_POLE_PAIRS],
                                1 - 2 * p[k + _P_MOTOR_NEG], amp, svpwm, d)
                bldc |= 1 << i
            elif drv == _SERVO:
                hal.servo_write(i, servo_pulse_us(ptr32(axes[i].packed)[_S_JOINT] - _OFF,
                                                  1 - 2 * p[k + _P_MOTOR_NEG], self.servo_q8[i]))
        if bldc:
            hal.bldc_write_axes(bldc, self.duties)
