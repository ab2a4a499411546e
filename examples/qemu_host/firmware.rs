//! What the echo firmware answers: requests, echo checks and its counters.

use super::*;

pub(crate) fn request(h: &PipeHandler, topic: &str, data: &[u8]) -> Res<Vec<u8>> {
    let req = Message::request(topic, data.to_vec()).map_err(|e| e.to_string())?;
    let reply = h
        .request(req, Some(REQUEST_TIMEOUT), None)
        .map_err(|e| format!("request {topic} ({} B): {e}", data.len()))?;
    if reply.topic() != topic {
        return Err(format!("reply topic {} for {topic}", reply.topic()));
    }
    Ok(reply.into_data())
}

pub(crate) fn echo(h: &PipeHandler, data: &[u8]) -> Res<()> {
    let got = request(h, "echo", data)?;
    let mut want = data.to_vec();
    want.reverse();
    if got != want {
        return Err(format!("echo of {} B came back wrong: {got:?}", data.len()));
    }
    Ok(())
}

/// The firmware's counters (see `qemu_echo::Stats`).
#[derive(Debug)]
#[allow(dead_code)] // fields are printed
pub(crate) struct FwStats {
    pub(crate) requests: u32,
    pub(crate) ends: u32,
    pub(crate) aborts: u32,
    pub(crate) restarts: u32,
    pub(crate) gone: u32,
    pub(crate) generation: u32,
    pub(crate) rx_bytes: u32,
    pub(crate) tx_bytes: u32,
    pub(crate) dropped: u32,
    pub(crate) stack_used: u32,
    pub(crate) uptime_ms: u32,
    pub(crate) part_bytes: u32,
    pub(crate) cuts: u32,
    pub(crate) gen_bytes: u32,
}

pub(crate) fn stats(h: &PipeHandler) -> Res<FwStats> {
    parse_stats(&request(h, "stats", b"")?)
}

pub(crate) fn parse_stats(raw: &[u8]) -> Res<FwStats> {
    let w: Vec<u32> = raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if w.len() != 14 {
        return Err(format!("stats reply of {} bytes", raw.len()));
    }
    Ok(FwStats {
        requests: w[0],
        ends: w[1],
        aborts: w[2],
        restarts: w[3],
        gone: w[4],
        generation: w[5],
        rx_bytes: w[6],
        tx_bytes: w[7],
        dropped: w[8],
        stack_used: w[9],
        uptime_ms: w[10],
        part_bytes: w[11],
        cuts: w[12],
        gen_bytes: w[13],
    })
}

// ---- Messages of any size, through a core endpoint of the host's own
