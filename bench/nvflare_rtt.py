#!/usr/bin/env python3
"""Round-trip latency and throughput of the ORIGINAL NVFlare PipeHandler (nvflare 2.8.3).

Both ends (ACTIVE and PASSIVE) of one in-process MemoryPipe live in this process, each driven by
its own PipeHandler with read_interval=1 ms.  Run it with the interpreter of a virtualenv that has
`nvflare==2.8.3` installed (bench/compare.sh sets one up).

Prints exactly one line on stdout:

    impl=nvflare transport=memory count=N payload=B rtt_p50_us=.. rtt_p99_us=.. msgs_per_s=..

Diagnostics (load average, settings, the enqueue-only rate) go to stderr.

What is measured:
  rtt   The ACTIVE end sends a request (send_to_peer); the PASSIVE end's message callback answers
        with Message.new_reply(..., req_msg_id=request.msg_id); the ACTIVE end's message callback
        hands the reply to the waiting main thread.  One round trip at a time, `count` of them
        (after a short warm-up), p50/p99 in microseconds.
  msgs/s  `threads` sender threads call send_to_peer(request) on the ACTIVE end at once,
        `count` messages in all, each must return True.  The rate is messages *read by the peer*
        (counted in the PASSIVE end's message callback) per second, from the first send until
        the last message was read (or the time budget ran out).
        Why "read by the peer" and not "send_to_peer returned True": MemoryPipe.send() is a
        non-blocking put into an unbounded queue.Queue and returns True at once, before the peer
        has read anything (unlike FilePipe/CellPipe, where True means the peer read it, which is
        the documented meaning).  Counting the True returns would measure queue.put(), not the
        pipe handler; that number is printed on stderr as enqueue_only_msgs_per_s.
"""

import argparse
import math
import os
import queue
import statistics
import sys
import threading
import time
import uuid


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def loadavg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000, help="round trips, and one-way messages (default 2000)")
    ap.add_argument("--payload", type=int, default=64, help="payload size in bytes (default 64)")
    ap.add_argument("--threads", type=int, default=8, help="sender threads for the throughput phase (default 8)")
    ap.add_argument("--read-interval", type=float, default=0.001, help="PipeHandler read_interval, s (default 0.001)")
    ap.add_argument(
        "--heartbeat-interval", type=float, default=0.05, help="PipeHandler heartbeat_interval, s (default 0.05)"
    )
    ap.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=10.0,
        help="PipeHandler heartbeat_timeout, s (default 10: generous, so a loaded 2-core box never sees PEER_GONE)",
    )
    ap.add_argument("--warmup", type=int, default=50, help="round trips before measuring (default 50)")
    ap.add_argument(
        "--budget", type=float, default=8.0, help="time budget per phase, s; a phase cut short says so (default 8)"
    )
    args = ap.parse_args()
    if args.count < 1 or args.payload < 0 or args.threads < 1:
        ap.error("need --count >= 1, --payload >= 0, --threads >= 1")

    try:
        import nvflare
        from nvflare.fuel.utils.constants import Mode
        from nvflare.fuel.utils.pipe.memory_pipe import MemoryPipe
        from nvflare.fuel.utils.pipe.pipe import Message, Topic
        from nvflare.fuel.utils.pipe.pipe_handler import PipeHandler
    except ImportError as e:
        sys.exit(f"nvflare_rtt.py: cannot import nvflare ({e}); run it with a venv that has nvflare==2.8.3")

    log = lambda s: print(f"nvflare_rtt: {s}", file=sys.stderr, flush=True)  # noqa: E731
    log(
        f"nvflare {nvflare.__version__}, python {sys.version.split()[0]}, loadavg {loadavg()} at start, "
        f"read_interval={args.read_interval} heartbeat={args.heartbeat_interval}/{args.heartbeat_timeout} "
        f"threads={args.threads}"
    )

    # MemoryPipe pairs ends by the constructor's `token` (a class-level dict), not by open()'s name.
    token = f"peerpipe_bench_{uuid.uuid4().hex}"
    active_pipe = MemoryPipe(token, Mode.ACTIVE)
    passive_pipe = MemoryPipe(token, Mode.PASSIVE)
    active_pipe.open("bench")
    passive_pipe.open("bench")

    def handler(pipe):
        return PipeHandler(
            pipe,
            read_interval=args.read_interval,
            heartbeat_interval=args.heartbeat_interval,
            heartbeat_timeout=args.heartbeat_timeout,
            default_request_timeout=30.0,
        )

    active = handler(active_pipe)
    passive = handler(passive_pipe)

    status_events = []  # END / ABORT / PEER_GONE seen by either end: any of them spoils the run

    def on_status(msg, side):
        status_events.append((side, msg.topic, msg.data, time.time()))

    active.set_status_cb(on_status, "active")
    passive.set_status_cb(on_status, "passive")

    # --- the PASSIVE end: answer "rtt" requests, count "oneway" requests (runs on its reader thread)
    oneway_lock = threading.Lock()
    oneway = {"n": 0, "target": None, "last": 0.0}
    oneway_done = threading.Event()

    def passive_on_msg(msg):
        if msg.topic == "rtt":
            passive.send_to_peer(Message.new_reply("rtt", msg.data, msg.msg_id), timeout=30.0)
        elif msg.topic == "oneway":
            with oneway_lock:
                oneway["n"] += 1
                oneway["last"] = time.perf_counter()
                if oneway["target"] is not None and oneway["n"] >= oneway["target"]:
                    oneway_done.set()

    passive.set_message_cb(passive_on_msg)

    # --- the ACTIVE end: hand replies to the waiting main thread (runs on its reader thread)
    replies = queue.Queue()

    def active_on_msg(msg):
        if msg.msg_type == Message.REPLY:
            replies.put(msg)

    active.set_message_cb(active_on_msg)

    passive.start()
    active.start()

    payload = b"\xa5" * args.payload

    def round_trip():
        req = Message.new_request("rtt", payload)
        t0 = time.perf_counter()
        if not active.send_to_peer(req, timeout=30.0):
            raise RuntimeError("send_to_peer(request) returned False")
        rep = replies.get(timeout=30.0)
        t1 = time.perf_counter()
        if rep.req_id != req.msg_id:
            raise RuntimeError(f"reply for {rep.req_id}, expected {req.msg_id}")
        return t1 - t0

    failed = None
    rtts = []
    phase_started = time.perf_counter()
    try:
        for _ in range(args.warmup):
            round_trip()
        phase_started = time.perf_counter()
        for _ in range(args.count):
            rtts.append(round_trip())
            if time.perf_counter() - phase_started > args.budget:
                log(f"rtt phase cut short by the {args.budget} s budget after {len(rtts)} of {args.count}")
                break
    except Exception as e:  # queue.Empty on a lost reply, or a False send
        failed = f"rtt phase: {type(e).__name__}: {e}"
    rtt_wall = time.perf_counter() - phase_started

    # --- throughput: many acknowledged one-way sends from several threads at once
    msgs_per_s = float("nan")
    enqueue_rate = float("nan")
    if failed is None:
        per_thread = [args.count // args.threads + (1 if i < args.count % args.threads else 0) for i in range(args.threads)]
        with oneway_lock:
            oneway["target"] = args.count
        false_sends = []
        barrier = threading.Barrier(args.threads + 1)
        sends_done_at = [0.0] * args.threads

        def sender(i):
            barrier.wait()
            for _ in range(per_thread[i]):
                if not active.send_to_peer(Message.new_request("oneway", payload), timeout=30.0):
                    false_sends.append(i)
            sends_done_at[i] = time.perf_counter()

        threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(args.threads)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        finished = oneway_done.wait(timeout=args.budget)
        for t in threads:
            t.join(timeout=30.0)
        with oneway_lock:
            n, last = oneway["n"], oneway["last"]
        end = last if finished else time.perf_counter()
        if false_sends:
            failed = f"throughput phase: {len(false_sends)} send_to_peer calls returned False"
        elif n == 0:
            failed = "throughput phase: the peer read nothing"
        else:
            msgs_per_s = n / (end - t0)
            enqueue_rate = args.count / (max(sends_done_at) - t0)
            if not finished:
                log(f"throughput phase cut short by the {args.budget} s budget: {n} of {args.count} read")

    load_end = loadavg()
    active.stop(close_pipe=True)
    passive.stop(close_pipe=True)

    if status_events:
        failed = (failed + "; " if failed else "") + "status events during the run: " + ", ".join(
            f"{side}:{topic}({data})" for side, topic, data, _ in status_events
        )
    if failed:
        log(f"FAILED: {failed}")
        sys.exit(1)

    rtts.sort()
    p50 = percentile(rtts, 50) * 1e6
    p99 = percentile(rtts, 99) * 1e6
    slow_share = sum(1 for r in rtts if r > 1.5 * args.read_interval) / len(rtts)
    log(
        f"rtt: {len(rtts)} round trips in {rtt_wall:.2f} s, mean {statistics.fmean(rtts) * 1e6:.0f} us, "
        f"min {rtts[0] * 1e6:.0f} us, max {rtts[-1] * 1e6:.0f} us, "
        f"{slow_share:.0%} slower than 1.5 read intervals (the distribution is bimodal: 1 or 2 reader "
        f"periods, so p50 flips between the modes from run to run; compare the mean too); "
        f"enqueue_only_msgs_per_s={enqueue_rate:.0f} (send_to_peer returning True on MemoryPipe = queue.put); "
        f"loadavg {load_end} at end"
    )
    print(
        f"impl=nvflare transport=memory count={args.count} payload={args.payload} "
        f"rtt_p50_us={p50:.1f} rtt_p99_us={p99:.1f} msgs_per_s={msgs_per_s:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
