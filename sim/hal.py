"""The simulator's side of the firmware HAL (firmware/hal.py), on simulated time.

:class:`SimHal` is the state both co-simulation modes share: the IMU counts
the firmware will read, the duties and servo pulses it wrote, the serial bytes
in each direction and the config file. In-process, the firmware calls its
methods directly (it subclasses ``firmware.hal.HAL``). Out of process,
``sim.firmware_runner.MicroPythonFirmware`` copies the same state to and from
``firmware/offboard/simpipe.py`` once per tick, so the plant side never knows
which mode runs.

    hal = SimHal(imu_model, handle_imu=handle_imu_model)   # handle_imu None: not fitted
    hal.now_us = 1000                # the world sets the clock before each tick
    hal.feed_rx(b"...")              # bytes the host sent that have arrived
    gimbal.tick(hal.now_us)
    out = hal.take_tx()              # bytes the firmware sent this tick
    hal.duties[axis], hal.motors_on, hal.servo_us[axis], hal.light_duty_u16
"""

from opensteady.firmware import hal as fw_hal

RX_BUFFER_BYTES = 1024  # a UART driver's ring buffer; overflow drops the newest bytes


class SimHal(fw_hal.HAL):
    board_id = fw_hal.BOARD_SIM

    def __init__(self, imu, config_bytes=None, handle_imu=None):
        self.imu = imu
        self.imu_delay_us = int(round(imu.delay_s * 1e6))  # the IMU model's filter delay (HAL.imu_delay_us)
        # rotor-angle sensor counts for this tick (the world samples sim.angle_sensor once per tick,
        # so both co-simulation modes see the same); -1: no sensor fitted
        self.angle_counts = [-1, -1, -1]
        self.handle_imu = handle_imu  # None: no second IMU fitted on the handle
        self.now_us = 0
        self.imu_ok = True  # a test may set False to inject an I2C error
        self.handle_imu_ok = handle_imu is not None
        self.motors_on = False
        self.duties = [[32768, 32768, 32768] for _ in range(3)]
        self.servo_us = [0, 0, 0]
        self.light_duty_u16 = 0  # the fill light's PWM duty (the virtual camera lights the subject with it)
        self.rx = bytearray()
        self.tx = bytearray()
        self.config_bytes = config_bytes
        self.config_saves = 0
        self.rx_overflow_bytes = 0

    # --- firmware/hal.py interface ---------------------------------------------
    def imu_read(self, raw):
        if not self.imu_ok:
            return False
        self.imu.read_into(raw)
        return True

    def handle_imu_read(self, raw):
        if not self.handle_imu_ok:
            return False
        self.handle_imu.read_into(raw)
        return True

    def angle_read(self, axis):
        return self.angle_counts[axis]

    def angle_read_axes(self, mask, counts):
        for i in range(3):
            if (mask >> i) & 1:
                counts[i] = self.angle_counts[i]

    def motors_enable(self, on):
        self.motors_on = bool(on)

    def bldc_write(self, axis, duty_a_u16, duty_b_u16, duty_c_u16):
        d = self.duties[axis]
        d[0] = duty_a_u16
        d[1] = duty_b_u16
        d[2] = duty_c_u16

    def bldc_write_axes(self, mask, duties):
        # once a tick: item by item (a slice copy makes a new array and list per axis)
        for i in range(3):
            if (mask >> i) & 1:
                d = self.duties[i]
                k = 3 * i
                d[0] = duties[k]
                d[1] = duties[k + 1]
                d[2] = duties[k + 2]

    def servo_write(self, axis, pulse_us):
        self.servo_us[axis] = pulse_us

    def light_write(self, pin, freq_hz, duty_u16):
        self.light_duty_u16 = duty_u16
        return True

    def serial_read_into(self, buf):
        n = min(len(buf), len(self.rx))
        if n:
            buf[:n] = self.rx[:n]
            del self.rx[:n]
        return n

    def serial_write(self, data):
        self.tx += data

    def config_load(self):
        return self.config_bytes

    def config_save(self, data):
        self.config_bytes = bytes(data)
        self.config_saves += 1
        return True

    def ticks_us(self):
        return self.now_us

    def sleep_us(self, us):
        """Lockstep: the world owns time, so sleeping is a no-op."""

    # --- the world's side ------------------------------------------------------
    def feed_rx(self, data):
        room = RX_BUFFER_BYTES - len(self.rx)
        if len(data) > room:
            self.rx_overflow_bytes += len(data) - room
            data = data[:room]
        self.rx += data

    def take_tx(self):
        if not self.tx:
            return b""
        out = bytes(self.tx)
        self.tx.clear()
        return out
