"""OpenSteady simulator: MuJoCo gimbal, motor/IMU/link models, virtual camera, scenarios and metrics."""
