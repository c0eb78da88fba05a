"""Connect to OpenSteady firmware, show its version, and stream telemetry.

    opensteady ping --list
    opensteady ping --port /dev/ttyACM0 --seconds 5
    opensteady ping --port spy:///dev/ttyACM0     # also hexdumps the traffic
"""

import json
import sys
import time

from opensteady.firmware import protocol as p


def add_arguments(parser):
    parser.add_argument("--port", help="serial port or pyserial URL (/dev/ttyACM0, COM3, socket://host:port, spy://...)")
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to print telemetry")
    parser.add_argument("--json", action="store_true", help="print one JSON object per message")
    parser.add_argument("--list", action="store_true", help="list serial ports and exit")


def _format_telemetry(t):
    flags = [p.FAULT_NAMES[i] for i in range(len(p.FAULT_NAMES)) if t["fault_flags"] & (1 << i)]
    return "mode=%-10s yaw=%7.2f pitch=%7.2f roll=%7.2f deg  loop=%4d us  faults=%s" % (
        p.MODE_NAMES[t["mode"]] if t["mode"] < len(p.MODE_NAMES) else t["mode"],
        t["yaw_cdeg"] / 100, t["pitch_cdeg"] / 100, t["roll_cdeg"] / 100,
        t["loop_time_us"], ",".join(flags) or "none",
    )


def run(args):
    if args.list:
        from serial.tools import list_ports

        ports = list(list_ports.comports())
        for port in ports:
            print("%-20s %s" % (port.device, port.description))
        if not ports:
            print("no serial ports found", file=sys.stderr)
        return 0
    from opensteady.host.errors import CommandError, link_exit_code

    if not args.port:
        raise CommandError("--port is required (or --list to see the serial ports)")
    from opensteady.host.link import Link, LinkError

    link = Link(args.port, baud=args.baud)
    try:
        link.open()
    except LinkError as exc:
        raise CommandError(str(exc), link_exit_code(exc)) from None
    with link:
        print("connected: %s" % json.dumps(link.version))
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            for msg_id, fields in link.poll():
                if args.json:
                    print(json.dumps({"msg_id": msg_id, **fields}))
                elif msg_id == p.MSG_TELEMETRY:
                    print(_format_telemetry(fields))
                elif msg_id == p.MSG_FAULT:
                    print("FAULT %s" % fields)
            time.sleep(0.01)
    return 0
