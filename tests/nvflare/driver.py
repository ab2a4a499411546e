"""NVFlare's PipeHandler on a FilePipe that drives a Rust echo (nvflare_echo).

Sends --count requests on `ping` with payloads of every plain kind, checks each reply (matched
by req_id) for equal data of the same types, then sends `quit` and waits for the peer's END:
exit 0. With --expect-gone it prints `pinged` after the requests and waits for PEER_GONE
instead (the test kills the peer): exit 3. Any mismatch or failure: exit 1.
"""

import sys
import time

from nvflare.fuel.utils.pipe.pipe import Message, Topic

from common import FAILED, OK, PEER_GONE, next_message, parse_args, say, start_handler

PAYLOADS = [
    b"\x00\x01\xfe\xff",
    "héllo, Rust",
    7,
    -5,
    -(2**40),
    2**63 + 5,
    3.25,
    True,
    None,
    [1, "two", None, b"3"],
    {"a": "x", "n": 7, "b": b"\xff"},
    {"weights": [0.5, -2.0], "meta": {"round": 3, "tags": [[]], 1: False}},
]


def extra(p):
    p.add_argument("--count", type=int, default=len(PAYLOADS))
    p.add_argument("--expect-gone", action="store_true")


def main():
    args = parse_args(extra)
    h = start_handler(args)
    deadline = time.time() + args.timeout
    for i in range(args.count):
        data = PAYLOADS[i % len(PAYLOADS)]
        req = Message.new_request("ping", data)
        t0 = time.time()
        if not h.send_to_peer(req, timeout=10.0):
            say(f"request {i} not read")
            sys.exit(FAILED)
        while True:
            msg = next_message(h, deadline)
            if msg.msg_type == Message.REPLY and msg.req_id == req.msg_id:
                break
            say(f"unexpected {msg.msg_type} {msg.topic} {msg.data!r}")
            sys.exit(FAILED)
        # repr tells True from 1 and 1.0 from 1: the types must come back too.
        if msg.topic != "ping" or repr(msg.data) != repr(data):
            say(f"reply {i}: {msg.data!r}, expected {data!r}")
            sys.exit(FAILED)
        say(f"reply {i} ok in {(time.time() - t0) * 1000:.2f} ms")
    if args.expect_gone:
        say("pinged")
        msg = next_message(h, deadline)
        say(f"status {msg.topic} {msg.data!r}")
        h.stop()
        sys.exit(PEER_GONE if msg.topic == Topic.PEER_GONE else FAILED)
    if not h.send_to_peer(Message.new_request("quit", None), timeout=10.0):
        say("quit not read")
        sys.exit(FAILED)
    msg = next_message(h, deadline)
    say(f"status {msg.topic} {msg.data!r}")
    h.stop()
    sys.exit(OK if msg.topic == Topic.END and msg.data == "bye" else FAILED)


if __name__ == "__main__":
    main()
