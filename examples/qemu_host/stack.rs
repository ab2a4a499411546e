//! The minimal firmware's stack high-water mark (`--stack`).

use super::*;

/// Runs the minimal firmware (feature `stack-probe`) through requests of every size,
/// pipelined requests, garbage and requests in parts, and returns its stack high-water
/// mark.
pub(crate) fn probe_stack(board: Board, elf: &str) -> Res<u32> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let proxy = Arc::new(Proxy::default());
    let qemu = spawn_qemu(board, elf, port)?;
    proxy.accept_qemu(&listener)?;
    let h = proxy.new_handler()?;
    // The minimal firmware echoes the payload as it is.
    let plain_echo = |data: &[u8]| -> Res<()> {
        let got = request(&h, "echo", data)?;
        check(got == data, "the minimal firmware echoes the payload")
    };
    for len in [0usize, 1, 8, 64, 100, 128] {
        let data: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
        plain_echo(&data)?;
    }
    thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || -> Res<()> {
                    for i in 0..20 {
                        let data: Vec<u8> = (0..128).map(|j| (i + j + t) as u8).collect();
                        plain_echo(&data)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or(Err("worker panicked".into())))
    })?;
    let garbage: Vec<u8> = (0..1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    proxy.inject(&garbage)?;
    plain_echo(b"after the garbage")?;
    // Requests in parts (the streaming receive): the minimal firmware answers their CRC-32.
    for len in [129usize, 1000, 4000] {
        let data = noise(len, len as u32);
        let got = request(&h, "crc", &data)?;
        check(
            got == crc32fast::hash(&data).to_le_bytes(),
            &format!("the minimal firmware's CRC-32 of a {len}-byte request in parts"),
        )?;
    }
    let raw = request(&h, "stack", b"")?;
    let used: [u8; 4] = raw
        .as_slice()
        .try_into()
        .map_err(|_| format!("stack reply of {} bytes", raw.len()))?;
    h.stop(true);
    drop(qemu);
    Ok(u32::from_le_bytes(used))
}
