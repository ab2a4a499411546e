#!/usr/bin/env python3
"""Host CPU time QEMU spends while the echo firmware idles: does the firmware sleep (WFI)?

    scripts/qemu-idle-cpu.py ELF BOARD [SECONDS]

BOARD is lm3s6965evb, microbit or virt (as for examples/qemu_host/). QEMU's UART connects to
a TCP listener of this script, as in qemu_host. Two windows of SECONDS (default 5) each are
measured from /proc/PID/stat (user + system time of the QEMU process):
  - "before first byte": the firmware waits for the host's first byte;
  - "after first byte": one byte (a frame delimiter) was sent, the firmware runs its endpoint
    (heartbeats every second, which this script reads and drops) and otherwise has nothing to do.
A firmware that polls keeps a host core busy (about 100 %); one that sleeps until an interrupt
stays near 0 %.
"""

import os
import socket
import subprocess
import sys
import threading
import time

MACHINES = {
    "lm3s6965evb": ["qemu-system-arm", "-cpu", "cortex-m3", "-machine", "lm3s6965evb"],
    "microbit": ["qemu-system-arm", "-cpu", "cortex-m0", "-machine", "microbit"],
    "virt": ["qemu-system-riscv32", "-machine", "virt", "-bios", "none"],
}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat; after the ")" they are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def window(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def main():
    elf, board = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    qemu = subprocess.Popen(
        MACHINES[board]
        + ["-display", "none", "-monitor", "none"]
        + ["-semihosting-config", "enable=on,target=native"]
        + ["-kernel", elf, "-serial", f"tcp:127.0.0.1:{port},nodelay=on"],
        stdin=subprocess.DEVNULL,
    )
    try:
        listener.settimeout(10)
        conn, _ = listener.accept()
        received = [0]

        def drain():
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                received[0] += len(data)

        threading.Thread(target=drain, daemon=True).start()
        time.sleep(1.0)  # boot
        before = window(qemu.pid, seconds)
        conn.sendall(b"\x00")
        time.sleep(0.5)
        after = window(qemu.pid, seconds)
        print(
            f"board={board} elf={elf} window={seconds:.0f}s "
            f"cpu_before_first_byte={before * 100:.1f}% cpu_after_first_byte={after * 100:.1f}% "
            f"bytes_from_firmware={received[0]}"
        )
    finally:
        qemu.kill()
        qemu.wait()


if __name__ == "__main__":
    main()
