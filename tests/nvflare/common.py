"""What the NVFlare-side test scripts share: arguments, the pipe and the handler."""

import argparse
import sys
import time

from nvflare.fuel.utils.constants import Mode
from nvflare.fuel.utils.pipe.file_pipe import FilePipe
from nvflare.fuel.utils.pipe.pipe_handler import PipeHandler

# Exit codes the Rust tests check.
OK = 0
FAILED = 1
PEER_GONE = 3
PEER_END = 4


def parse_args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["active", "passive"], required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--heartbeat-interval", type=float, default=0.2)
    p.add_argument("--heartbeat-timeout", type=float, default=3.0)
    p.add_argument("--file-check-interval", type=float, default=0.01)
    p.add_argument("--read-interval", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=60.0, help="give up after this long")
    if extra:
        extra(p)
    return p.parse_args()


def start_handler(args):
    mode = Mode.ACTIVE if args.mode == "active" else Mode.PASSIVE
    pipe = FilePipe(mode, args.root, file_check_interval=args.file_check_interval)
    pipe.open(args.name)
    h = PipeHandler(
        pipe,
        read_interval=args.read_interval,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=args.heartbeat_timeout,
        default_request_timeout=10.0,
    )
    h.start()
    say("ready")
    return h


def say(line):
    print(line, flush=True)


def next_message(h, deadline):
    """The next item from the handler's queue, or exits FAILED at the deadline."""
    while time.time() < deadline:
        msg = h.get_next()
        if msg is not None:
            return msg
        time.sleep(0.002)
    say("timed out")
    h.stop()
    sys.exit(FAILED)
