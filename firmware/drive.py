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

Allocates nothing per tick: the duties go through one preallocated list.
"""

from .config import DRIVER_BLDC, DRIVER_SERVO
from .motor import bldc_amplitude, bldc_duties, servo_pulse_us

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]

_BLDC = const(0)  # config.DRIVER_BLDC (imported names are not constants to viper)
_SERVO = const(1)  # config.DRIVER_SERVO


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
        self.duty = [0, 0, 0]

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
        driver = self.driver
        pole_pairs = self.pole_pairs
        motor_dir = self.motor_dir
        amp = self.amp
        svpwm = int(self.svpwm)
        d = self.duty
        closed = foc.closed
        for i in range(3):
            drv = int(driver[i])
            if drv == _BLDC:
                if int(closed[i]):
                    foc.duties(i, axes[i], amp[i], svpwm, d)
                else:
                    bldc_duties(axes[i].joint_udeg, pole_pairs[i], motor_dir[i], amp[i], svpwm, d)
                hal.bldc_write(i, d[0], d[1], d[2])
            elif drv == _SERVO:
                hal.servo_write(i, servo_pulse_us(axes[i].joint_udeg, motor_dir[i], self.servo_q8[i]))
