#!/usr/bin/env python3
"""Stack frames of a Thumb (Cortex-M) ELF, read off its disassembly, and its deepest call path.

    scripts/thumb-stack-frames.py ELF [ROOT]

Each function's frame is what its prologue reserves: `push {...}` (4 B a register), then
`sub sp, #n` (Thumb-2 also `sub.w`/`subw sp, sp, #n`), or a negative literal added to `sp`
for large frames. The deepest path follows
direct calls (`bl`) from ROOT (default: the function whose name contains `rt_main`, the
cortex-m-rt entry) and adds their frames. An estimate: the deepest path may never be taken
(it then overstates), calls through pointers and recursion are not followed (it then
understates); on the minimal firmware it agreed within 100 B with the painted measurement of
`cargo xtask size` (docs/design/firmware-size.md). Needs llvm-objdump.
"""

import functools
import re
import subprocess
import sys


def clean(name):
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    return name.replace("$LT$", "<").replace("$GT$", ">").replace("$C$", ",")


def main():
    elf = sys.argv[1]
    root_pattern = sys.argv[2] if len(sys.argv) > 2 else "rt_main"
    raw = subprocess.run(
        ["llvm-objdump", "-d", "-C", elf], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    words = {}
    for line in raw:
        m = re.match(r"\s+([0-9a-f]+):\s+(\w\w) (\w\w) (\w\w) (\w\w)\s+\.word", line)
        if m:
            words[int(m.group(1), 16)] = int(m.group(5) + m.group(4) + m.group(3) + m.group(2), 16)
    frames, calls, fn, seen = {}, {}, None, 0
    for i, line in enumerate(raw):
        m = re.match(r"^[0-9a-f]+ <(.*)>:", line)
        if m and not m.group(1).startswith("$"):
            fn, seen = clean(m.group(1)), 0
            frames[fn], calls[fn] = 0, set()
            continue
        if fn is None:
            continue
        seen += 1
        if seen < 12:  # the prologue
            m = re.search(r"push\s+\{(.*)\}", line)
            if m:
                frames[fn] += 4 * len(m.group(1).split(","))
            m = re.search(r"sub(?:\.w|w)?\s+sp, (?:sp, )?#(\d+)", line)
            if m:
                frames[fn] += int(m.group(1))
            m = re.search(r"add\s+sp, (r\d)$", line)
            if m:
                for back in raw[max(i - 5, 0):i][::-1]:
                    lit = re.search(r"ldr\s+%s, \[pc.*@ 0x([0-9a-f]+)" % m.group(1), back)
                    if lit:
                        w = words.get(int(lit.group(1), 16), 0)
                        if w >= 0x80000000:
                            frames[fn] += 0x100000000 - w
                        break
        m = re.search(r"\tbl\s+0x[0-9a-f]+ <([^>+]*)", line)
        if m:
            calls[fn].add(clean(m.group(1)))

    @functools.lru_cache(None)
    def depth(f):
        best = (0, [])
        for callee in calls.get(f, ()):
            if callee != f:
                d = depth(callee)
                if d[0] > best[0]:
                    best = d
        return (frames.get(f, 0) + best[0], [f] + best[1])

    print("largest frames:")
    for f, size in sorted(frames.items(), key=lambda x: -x[1])[:12]:
        print(f"{size:6} {f}")
    for f in frames:
        if root_pattern in f and "closure" not in f:
            total, path = depth(f)
            print(f"deepest path from {f}: {total} B")
            for g in path:
                print(f"{frames.get(g, 0):6} {g}")


if __name__ == "__main__":
    main()
