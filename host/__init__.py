"""OpenSteady host application: capture, target selection, framing control, gimbal drivers and CLI."""

__version__ = "0.1.0"
