"""Motor outputs: what drives each axis (three BLDC phases or a hobby servo) and the writes to the HAL.

By default the motors run open loop, as in STorM32, BruGi and EvvGC: each
tick the commanded joint angle of every axis (``AxisController.joint_udeg``)
becomes three BLDC duties (motor.bldc_duties, sinusoidal or SVPWM) or one
servo pulse (motor.servo_pulse_us). An axis on the closed-loop drive whose
rotor was read this tick (``FocDrive.closed`` bit i, firmware/foc.py) gets its
controller's effort as a torque instead. Off means every output silent and the HAL's enable
off.

    drive = MotorDrive(hal)
    drive.configure(cfg)     # drivers, pole pairs, power, direction, servo scale, commutation
    drive.enable()
    drive.write(axes, foc)   # each tick: the three AxisControllers -> HAL (foc: a FocDrive)
    drive.disable()

Allocates nothing per tick. Each BLDC axis' field (its table index and signed amplitude) goes into
one preallocated ``array('i')``, ``fields`` (the open-loop ones from the joint command here, the
closed-loop ones from ``FocDrive.fields``); one ``motor.phase_duties_axes`` call turns them into
the nine duties of one ``array('H')`` (axis i's phases at 3i..3i+2), and they reach the HAL in one
``bldc_write_axes`` call.
"""

from array import array

from .config import DRIVER_BLDC, DRIVER_SERVO
from .motor import F_OFF, F_POWER, F_STRIDE, bldc_amplitude, field_index, phase_duties_axes, servo_pulse_us

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
# MotorDrive.fields: phase_duties_axes' words per axis (motor.F_*)
_F_INDEX = const(0)  # motor.F_INDEX
_F_AMP = const(1)  # motor.F_AMP
_F_STRIDE = const(3)  # motor.F_STRIDE
_F_OFF = const(0x20000000)  # motor.F_OFF


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
        # each axis' field for phase_duties_axes (motor.F_*): index, signed amplitude, configured amplitude
        self.fields = array("i", [F_OFF] * (3 * F_STRIDE))
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
            self.fields[i * F_STRIDE + F_POWER] = self.amp[i] + F_OFF

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
        """Drive each axis: to its controller's joint angle, or (``foc.closed`` bit i) with its effort as a torque."""
        hal = self.hal
        p = ptr32(self._packed)
        f = ptr32(self.fields)
        closed = int(foc.closed)
        bldc = 0  # bit i: axis i is a BLDC, its duties go into self.duties
        torque = 0  # some BLDC axis commutates on its rotor
        for i in range(3):
            k = i * _W
            drv = p[k + _P_DRIVER]
            if drv == _BLDC:
                if (closed >> i) & 1:
                    torque = 1
                else:
                    n = i * _F_STRIDE
                    f[n + _F_INDEX] = int(field_index(ptr32(axes[i].packed)[_S_JOINT] - _OFF, p[k + _P_POLE_PAIRS],
                                                      1 - 2 * p[k + _P_MOTOR_NEG])) + _F_OFF
                    f[n + _F_AMP] = p[k + _P_AMP] + _F_OFF
                bldc |= 1 << i
            elif drv == _SERVO:
                hal.servo_write(i, servo_pulse_us(ptr32(axes[i].packed)[_S_JOINT] - _OFF,
                                                  1 - 2 * p[k + _P_MOTOR_NEG], self.servo_q8[i]))
        if torque:
            foc.fields(axes, self.fields)  # the closed axes' fields, from their rotors and efforts
        if bldc:
            duties = self.duties
            phase_duties_axes(bldc, self.fields, self.svpwm, duties)  # svpwm: an object, an int argument there
            hal.bldc_write_axes(bldc, duties)
