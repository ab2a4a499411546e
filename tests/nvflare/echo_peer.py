"""NVFlare's PipeHandler on a FilePipe that echoes every request (the peer of nvflare_client).

On a request on `quit` it sends END ("bye") and exits 0. A status from the peer is printed as
`status <topic> <data>` and ends the script: exit 3 for PEER_GONE, 4 for END, 1 otherwise.
"""

import sys
import time

from nvflare.fuel.utils.pipe.pipe import Message, Topic

from common import FAILED, OK, PEER_END, PEER_GONE, next_message, parse_args, say, start_handler


def main():
    args = parse_args()
    h = start_handler(args)
    deadline = time.time() + args.timeout
    while True:
        msg = next_message(h, deadline)
        if msg.topic in (Topic.END, Topic.ABORT, Topic.PEER_GONE):
            say(f"status {msg.topic} {msg.data!r}")
            h.stop()
            sys.exit({Topic.PEER_GONE: PEER_GONE, Topic.END: PEER_END}.get(msg.topic, FAILED))
        if msg.msg_type != Message.REQUEST:
            say(f"unexpected reply {msg.topic}")
            continue
        if msg.topic == "quit":
            h.notify_end("bye")
            say("sent END")
            h.stop()
            sys.exit(OK)
        say(f"echo {msg.topic} {msg.data!r}")
        if not h.send_to_peer(Message.new_reply(msg.topic, msg.data, msg.msg_id)):
            say("reply not read")
            h.stop()
            sys.exit(FAILED)


if __name__ == "__main__":
    main()
