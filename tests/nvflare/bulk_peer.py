"""NVFlare's PipeHandler on a FilePipe that exchanges large bytes values with a Rust peer.

On a request `digest` (data: bytes) it replies {"len": n, "sha256": hex, "created": when the
file appeared, "read": when NVFlare had read it (both seconds since the epoch)}, prints `received N bytes ...`, then sends the
peer a request `push` with {"data": N random bytes, "sha256": hex} and prints how long the
send took (`pushing N bytes at T` when it begins, `pushed N bytes in S s` once the peer had read
the file, and before, `fobs.dumpf ...`, what writing such a file alone takes); the peer's reply
must be {"ok": True}. On `quit` it sends END ("bye") and exits 0. Anything else: exit 1.
"""

import hashlib
import os
import sys
import tempfile
import time

from nvflare.fuel.utils import fobs
from nvflare.fuel.utils.pipe.pipe import Message, Topic

from common import FAILED, OK, next_message, parse_args, say, start_handler


def main():
    args = parse_args()
    h = start_handler(args)
    deadline = time.time() + args.timeout
    while True:
        msg = next_message(h, deadline)
        if msg.topic in (Topic.END, Topic.ABORT, Topic.PEER_GONE):
            say(f"status {msg.topic} {msg.data!r}")
            h.stop()
            sys.exit(FAILED)
        if msg.msg_type != Message.REQUEST:
            say(f"unexpected reply {msg.topic}")
            h.stop()
            sys.exit(FAILED)
        if msg.topic == "quit":
            h.notify_end("bye")
            say("sent END")
            h.stop()
            sys.exit(OK)
        if msg.topic != "digest" or not isinstance(msg.data, bytes):
            say(f"unexpected request {msg.topic} {type(msg.data)}")
            h.stop()
            sys.exit(FAILED)
        data = msg.data
        n = len(data)
        read = msg.received_time - msg.sent_time
        say(f"received {n} bytes, {read:.3f} s from the file's creation to its reading")
        digest = hashlib.sha256(data).hexdigest()
        reply = {"len": n, "sha256": digest, "created": msg.sent_time, "read": msg.received_time}
        del data, msg.data
        if not h.send_to_peer(Message.new_reply("digest", reply, msg.msg_id), timeout=60.0):
            say("digest reply not read")
            h.stop()
            sys.exit(FAILED)

        data = os.urandom(n)
        value = {"data": data, "sha256": hashlib.sha256(data).hexdigest()}
        # What writing the file alone costs NVFlare (fobs.dumpf, as its FilePipe does).
        with tempfile.TemporaryDirectory() as d:
            t0 = time.time()
            fobs.dumpf(value, os.path.join(d, "f"))
            say(f"fobs.dumpf of {n} bytes takes {time.time() - t0:.3f} s")
        push = Message.new_request("push", value)
        t0 = time.time()
        say(f"pushing {n} bytes at {t0:.6f}")
        if not h.send_to_peer(push, timeout=60.0):
            say("push not read")
            h.stop()
            sys.exit(FAILED)
        say(f"pushed {n} bytes in {time.time() - t0:.3f} s (written, then read by the peer)")
        del data, value, push
        answer = next_message(h, deadline)
        if answer.msg_type != Message.REPLY or answer.data != {"ok": True}:
            say(f"push answered {answer.topic} {answer.data!r}")
            h.stop()
            sys.exit(FAILED)


if __name__ == "__main__":
    main()
