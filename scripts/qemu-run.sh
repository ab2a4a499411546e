#!/usr/bin/env bash
# Cargo runner for the firmware tests (.cargo/config.toml): runs one ELF in QEMU.
#
#   scripts/qemu-run.sh [--target TRIPLE] ELF [EXTRA QEMU ARGS...]
#
# Exit status: the firmware's semihosting exit (0 ok, 1 failed); 124 (or 137) = hung, killed by
# `timeout`. The board follows the target (given by --target, else read from the ELF's path):
#   thumbv7m-none-eabi    -> lm3s6965evb, cortex-m3 (256K flash, 64K RAM)
#   thumbv6m-none-eabi    -> microbit,    cortex-m0 (256K flash, 16K RAM)
#   thumbv7em-none-eabihf -> mps2-an386,  cortex-m4
# QEMU_MACHINE and QEMU_CPU override the board, QEMU_TIMEOUT the time limit (seconds, default 120).
# ELFs with a .defmt section are decoded with defmt-print (cargo install --locked defmt-print).
set -euo pipefail

target=""
if [[ "${1:-}" == "--target" ]]; then
  target="${2:?--target needs a target triple}"
  shift 2
fi
elf="${1:?usage: qemu-run.sh [--target TRIPLE] ELF [EXTRA QEMU ARGS...]}"
shift

if [[ -z "$target" ]]; then
  case "$elf" in
    */thumbv7m-none-eabi/*) target=thumbv7m-none-eabi ;;
    */thumbv6m-none-eabi/*) target=thumbv6m-none-eabi ;;
    */thumbv7em-none-eabihf/*) target=thumbv7em-none-eabihf ;;
  esac
fi

case "$target" in
  thumbv7m-none-eabi) machine=lm3s6965evb cpu=cortex-m3 ;;
  thumbv6m-none-eabi) machine=microbit cpu=cortex-m0 ;;
  thumbv7em-none-eabihf) machine=mps2-an386 cpu=cortex-m4 ;;
  *)
    if [[ -z "${QEMU_MACHINE:-}" || -z "${QEMU_CPU:-}" ]]; then
      echo "qemu-run.sh: no QEMU board for target '${target:-unknown}' (ELF $elf); set QEMU_MACHINE and QEMU_CPU" >&2
      exit 2
    fi
    ;;
esac
machine="${QEMU_MACHINE:-$machine}"
cpu="${QEMU_CPU:-$cpu}"

if ! command -v qemu-system-arm >/dev/null 2>&1; then
  echo "qemu-run.sh: qemu-system-arm not found (apt-get install --no-install-recommends qemu-system-arm)" >&2
  exit 127
fi

qemu=(timeout -k 2 "${QEMU_TIMEOUT:-120}"
  qemu-system-arm -cpu "$cpu" -machine "$machine" -nographic
  -semihosting-config enable=on,target=native -kernel "$elf" "$@")

if readelf -S "$elf" 2>/dev/null | grep -q '\.defmt'; then
  "${qemu[@]}" </dev/null | defmt-print -e "$elf"
else
  exec "${qemu[@]}" </dev/null
fi
