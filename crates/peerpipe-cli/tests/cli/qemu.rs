//! `request` against the QEMU echo firmware (run by `cargo xtask qemu`).

use super::*;

/// QEMU running the echo firmware (`firmware/qemu-echo`), killed when dropped.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts QEMU on the firmware `elf` for `board`, its UART a TCP client of `addr`.
fn start_qemu(elf: &str, board: &str, addr: &str) -> Qemu {
    let (program, machine): (&str, &[&str]) = match board {
        "lm3s6965evb" => (
            "qemu-system-arm",
            &["-cpu", "cortex-m3", "-machine", "lm3s6965evb"],
        ),
        "microbit" => (
            "qemu-system-arm",
            &["-cpu", "cortex-m0", "-machine", "microbit"],
        ),
        "virt" => (
            "qemu-system-riscv32",
            &["-machine", "virt", "-bios", "none"],
        ),
        other => panic!("unknown board {other} (lm3s6965evb, microbit or virt)"),
    };
    let child = Command::new(program)
        .args(machine)
        .args(["-display", "none", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-kernel", elf])
        .args(["-serial", &format!("tcp:{addr},nodelay=on")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Qemu(child)
}

/// The data of a `--json` reply: `data` (UTF-8) or `data_hex`.
fn data_of(v: &Value) -> Vec<u8> {
    match (v["data"].as_str(), v["data_hex"].as_str()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (_, Some(hex)) => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
        _ => panic!("no data in {v}"),
    }
}

/// CRC-32 (IEEE, as the firmware's `crc` computes it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `peerpipe --json request tcp-listen:0 ...` answered by the echo firmware in QEMU, whose
/// UART connects to it (one QEMU run per request): the reply's JSON object.
fn request_qemu(elf: &str, board: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json", "request", "tcp-listen:0"];
    all.extend(args);
    all.extend(["--timeout", "30"]);
    let requester = Bg::start(&all);
    let _qemu = start_qemu(elf, board, &requester.addr);
    let (status, out) = requester.wait();
    assert_eq!(status, 0, "{args:?}: {out}");
    json_lines(&out).remove(0)
}

/// `peerpipe request` against the echo firmware in QEMU (what `cargo xtask qemu` runs after
/// `qemu_host`, with `PEERPIPE_QEMU_ELF` and `PEERPIPE_QEMU_BOARD` set): a short echo (the
/// firmware answers with the data reversed), a 32 KiB `crc` request that the firmware
/// streams into a CRC-32 (fragments cut to its 128-byte payloads), and an 8 KiB `gen` reply
/// checked byte by byte; then `peerpipe bench` against it.
#[test]
#[ignore = "needs QEMU and the echo firmware: cargo xtask qemu runs it"]
fn request_against_the_qemu_echo_firmware() {
    let elf = std::env::var("PEERPIPE_QEMU_ELF")
        .expect("PEERPIPE_QEMU_ELF: the echo firmware's ELF (firmware/qemu-echo/target/...)");
    let board = std::env::var("PEERPIPE_QEMU_BOARD").unwrap_or_else(|_| "lm3s6965evb".into());

    let v = request_qemu(&elf, &board, &["echo", "hello board"]);
    assert_eq!(v["data"], "draob olleh", "{v}");

    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(32 * 1024, 5);
    let file = dir.path().join("crc.bin");
    std::fs::write(&file, &data).unwrap();
    let t0 = Instant::now();
    let v = request_qemu(&elf, &board, &["crc", &format!("@{}", file.display())]);
    assert_eq!(data_of(&v), crc32(&data).to_le_bytes(), "{v}");
    eprintln!(
        "{board}: crc of 32 KiB through peerpipe request in {:?}",
        t0.elapsed()
    );

    let len: u32 = 8 * 1024;
    let file = dir.path().join("gen.bin");
    std::fs::write(&file, len.to_le_bytes()).unwrap();
    let v = request_qemu(&elf, &board, &["gen", &format!("@{}", file.display())]);
    let want: Vec<u8> = (0..len as usize)
        .map(|i| (i.wrapping_mul(31).wrapping_add(7) & 0xFF) as u8)
        .collect();
    assert_eq!(v["len"], len);
    assert!(data_of(&v) == want, "the gen reply differs: {v}");

    // `bench` (its topic `bench` is echoed as it is by the firmware).
    let bench = Bg::start(&[
        "--json",
        "bench",
        "tcp-listen:0",
        "--count",
        "200",
        "--size",
        "64",
        "--timeout",
        "30",
    ]);
    let _qemu = start_qemu(&elf, &board, &bench.addr);
    let (status, out) = bench.wait();
    assert_eq!(status, 0, "bench: {out}");
    let v = json_lines(&out).remove(0);
    eprintln!("{board}: peerpipe bench: {v}");
    assert_eq!(v["count"], 200, "{v}");
}
