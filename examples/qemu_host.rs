//! Drives the `firmware/qemu-echo` firmware in QEMU with peerpipe-std over TCP: requests and
//! replies of several sizes, a burst of garbage bytes, END and ABORT both ways, GONE when QEMU
//! is killed, and the restart of a second QEMU run. Then messages of any size, through a core
//! endpoint driven straight over the connection: a 256 KiB request the firmware streams into
//! a CRC-32, a 64 KiB reply it generates from a source, a message cut off half way (its source
//! fails), and one over the firmware's `max_message`; payload throughput through the UART is
//! printed for both directions. A third QEMU run is driven by the async
//! driver, peerpipe-tokio, straight over the TCP connection: echo from concurrent tasks, END
//! from the firmware, GONE when QEMU is killed (one wire protocol for every driver). Prints
//! wire and throughput numbers. `cargo xtask qemu` builds the firmware for each board and runs this; by hand:
//!
//! ```text
//! (cd firmware/qemu-echo && cargo build --release --target thumbv6m-none-eabi)
//! cargo run --release -p peerpipe-examples --example qemu_host -- \
//!     firmware/qemu-echo/target/thumbv6m-none-eabi/release/echo [microbit]
//! ```
//!
//! The board (the QEMU machine) is `lm3s6965evb` (thumbv7m), `microbit` (thumbv6m) or `virt`
//! (riscv32imac); without the argument it follows the target named in the ELF's path.
//!
//! `firmware/qemu-embassy` (the same application on embassy, through peerpipe-embedded's
//! async driver; lm3s6965evb only) answers the same way and goes through the same checks:
//! `cargo xtask qemu` runs them against both.
//!
//! `qemu_host --stack ELF [BOARD]` instead drives the minimal firmware built with the feature
//! `stack-probe` (what `cargo xtask size` does): requests of every size, pipelined, garbage,
//! and requests in parts (answered with their CRC-32), then the request `stack`; prints
//! `stack=<bytes>`, its stack high-water mark.
//!
//! Wiring: this program listens for QEMU's `-serial tcp:` client on one port and runs a small
//! proxy between QEMU and the current `PipeHandler` (a `TcpTransport` it connects to). The
//! proxy lets the test inject garbage into the firmware's RX, replace the handler (END and
//! ABORT close a conversation for good), and keep the handler's connection while QEMU is
//! killed and started again.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use peerpipe_examples::cli;
use peerpipe_std::peerpipe_core::{self as ppc, wire, FailReason, MsgId, Outcome, PartKind};
use peerpipe_std::{Config, Item, Message, PipeHandler, Status, TcpTransport};

type Res<T> = Result<T, String>;

/// When the program started (for the time stamps of the progress lines).
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// A progress line, stamped with the seconds since the start.
macro_rules! say {
    ($($arg:tt)*) => {
        println!(
            "[{:6.2}] qemu-host: {}",
            START.get_or_init(Instant::now).elapsed().as_secs_f64(),
            format!($($arg)*)
        )
    };
}

/// Generous bounds: QEMU and the firmware may share two cores with a parallel build.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(250),
        heartbeat_timeout: Duration::from_millis(3_000),
        resend_interval: Some(Duration::from_millis(300)),
        max_resends: None,
        default_request_timeout: Duration::from_millis(20_000),
        max_message: 0,
    }
}

/// Kills and reaps QEMU when dropped (QEMU never exits by itself when its peer goes).
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A QEMU machine the firmware runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Board {
    /// TI LM3S6965 evaluation board: Cortex-M3, PL011 UART0.
    Lm3s6965evb,
    /// BBC micro:bit: nRF51822, Cortex-M0, nRF51 UART.
    Microbit,
    /// QEMU's RISC-V `virt` machine (riscv32): NS16550 UART0.
    Virt,
}

impl Board {
    const ALL: [Board; 3] = [Board::Lm3s6965evb, Board::Microbit, Board::Virt];

    fn name(self) -> &'static str {
        match self {
            Board::Lm3s6965evb => "lm3s6965evb",
            Board::Microbit => "microbit",
            Board::Virt => "virt",
        }
    }

    /// The Rust target the firmware for this board is built for.
    fn target(self) -> &'static str {
        match self {
            Board::Lm3s6965evb => "thumbv7m-none-eabi",
            Board::Microbit => "thumbv6m-none-eabi",
            Board::Virt => "riscv32imac-unknown-none-elf",
        }
    }

    /// The board named `name`, or the one whose target appears in `elf`'s path.
    fn find(name: Option<&str>, elf: &str) -> Option<Board> {
        match name {
            Some(name) => Board::ALL.into_iter().find(|b| b.name() == name),
            None => Board::ALL.into_iter().find(|b| elf.contains(b.target())),
        }
    }

    /// The QEMU program and its machine arguments.
    fn qemu(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Board::Lm3s6965evb => (
                "qemu-system-arm",
                &["-cpu", "cortex-m3", "-machine", "lm3s6965evb"],
            ),
            Board::Microbit => (
                "qemu-system-arm",
                &["-cpu", "cortex-m0", "-machine", "microbit"],
            ),
            Board::Virt => (
                "qemu-system-riscv32",
                &["-machine", "virt", "-bios", "none"],
            ),
        }
    }
}

fn spawn_qemu(board: Board, elf: &str, port: u16) -> Res<Qemu> {
    let (program, machine) = board.qemu();
    Command::new(program)
        .args(machine)
        .args(["-display", "none", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-kernel", elf])
        .args(["-serial", &format!("tcp:127.0.0.1:{port},nodelay=on")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Qemu)
        .map_err(|e| format!("cannot start {program}: {e}"))
}

/// QEMU's connection to `listener` (blocking, no delay), within `CONNECT_TIMEOUT`.
fn accept_qemu(listener: &TcpListener) -> Res<TcpStream> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(format!("QEMU did not connect: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// The proxy between QEMU and the current handler, with byte counters.
#[derive(Default)]
struct Proxy {
    qemu: Mutex<Option<TcpStream>>,
    handler: Mutex<Option<TcpStream>>,
    to_fw: AtomicU64,
    from_fw: AtomicU64,
}

impl Proxy {
    fn forward(self: &Arc<Self>, mut from: TcpStream, to_qemu: bool) -> thread::JoinHandle<()> {
        let proxy = Arc::clone(self);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let (slot, counter) = if to_qemu {
                    (&proxy.qemu, &proxy.to_fw)
                } else {
                    (&proxy.handler, &proxy.from_fw)
                };
                counter.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(out) = slot.lock().unwrap().as_mut() {
                    let _ = out.write_all(&buf[..n]);
                }
            }
        })
    }

    /// Waits for QEMU's connection on `listener` and starts forwarding from it.
    fn accept_qemu(self: &Arc<Self>, listener: &TcpListener) -> Res<()> {
        let stream = accept_qemu(listener)?;
        *self.qemu.lock().unwrap() = Some(stream.try_clone().map_err(|e| e.to_string())?);
        self.forward(stream, false);
        Ok(())
    }

    /// A new handler, connected through the proxy, started.
    fn new_handler(self: &Arc<Self>) -> Res<PipeHandler> {
        let transport = TcpTransport::listen("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = transport.local_addr().ok_or("no local address")?;
        // Connect first: the handler's start accepts this queued connection.
        let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let handler = PipeHandler::new(transport, config()).map_err(|e| e.to_string())?;
        handler.start().map_err(|e| e.to_string())?;
        if let Some(old) = self
            .handler
            .lock()
            .unwrap()
            .replace(stream.try_clone().map_err(|e| e.to_string())?)
        {
            let _ = old.shutdown(Shutdown::Both);
        }
        self.forward(stream, true);
        Ok(handler)
    }

    /// A new connection through the proxy, in place of the handler's: the far end of it, for
    /// a [`RawPeer`].
    fn new_raw(self: &Arc<Self>) -> Res<TcpStream> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let near = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let (far, _) = listener.accept().map_err(|e| e.to_string())?;
        for s in [&near, &far] {
            s.set_nodelay(true).map_err(|e| e.to_string())?;
        }
        if let Some(old) = self
            .handler
            .lock()
            .unwrap()
            .replace(near.try_clone().map_err(|e| e.to_string())?)
        {
            let _ = old.shutdown(Shutdown::Both);
        }
        self.forward(near, true);
        Ok(far)
    }

    /// Writes raw bytes to the firmware.
    fn inject(&self, bytes: &[u8]) -> Res<()> {
        let mut slot = self.qemu.lock().unwrap();
        let out = slot.as_mut().ok_or("no QEMU connection")?;
        out.write_all(bytes).map_err(|e| e.to_string())
    }

    fn forget_qemu(&self) {
        self.qemu.lock().unwrap().take();
    }

    fn bytes(&self) -> (u64, u64) {
        (
            self.to_fw.load(Ordering::Relaxed),
            self.from_fw.load(Ordering::Relaxed),
        )
    }
}

fn request(h: &PipeHandler, topic: &str, data: &[u8]) -> Res<Vec<u8>> {
    let req = Message::request(topic, data.to_vec()).map_err(|e| e.to_string())?;
    let reply = h
        .request(req, Some(REQUEST_TIMEOUT), None)
        .map_err(|e| format!("request {topic} ({} B): {e}", data.len()))?;
    if reply.topic() != topic {
        return Err(format!("reply topic {} for {topic}", reply.topic()));
    }
    Ok(reply.into_data())
}

fn echo(h: &PipeHandler, data: &[u8]) -> Res<()> {
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
struct FwStats {
    requests: u32,
    ends: u32,
    aborts: u32,
    restarts: u32,
    gone: u32,
    generation: u32,
    rx_bytes: u32,
    tx_bytes: u32,
    dropped: u32,
    stack_used: u32,
    uptime_ms: u32,
    part_bytes: u32,
    cuts: u32,
    gen_bytes: u32,
}

fn stats(h: &PipeHandler) -> Res<FwStats> {
    parse_stats(&request(h, "stats", b"")?)
}

fn parse_stats(raw: &[u8]) -> Res<FwStats> {
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

/// The raw peer's capacities: 1 KiB inline messages (fragments go at the firmware's 128 B),
/// 8 + 8 slots.
const RAW_PAYLOAD: usize = 1024;
const RAW_TOPIC: usize = 32;
const RAW_FRAME: usize = wire::max_encoded_len(RAW_PAYLOAD, RAW_TOPIC);
type RawEndpoint = ppc::Endpoint<RAW_PAYLOAD, RAW_TOPIC, 8, 8, RAW_FRAME>;
type RawEvent = ppc::Event<RAW_PAYLOAD, RAW_TOPIC>;

/// The bytes of the raw peer's long messages, by id; a message is unreadable from its
/// `fail_from` on (to have it cut off half way).
#[derive(Default)]
struct Held {
    msgs: Vec<(MsgId, Vec<u8>, Option<u64>)>,
}

impl ppc::Source for Held {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        let (_, data, fail_from) = self.msgs.iter().find(|(m, _, _)| *m == id)?;
        if fail_from.is_some_and(|f| offset >= f) {
            return None;
        }
        data.get(offset as usize..)?.get(..len)
    }
}

/// A core endpoint driven straight over a TCP connection to the firmware (through the
/// proxy): what any v3 peer sends and receives, independent of the host drivers' limits.
struct RawPeer {
    ep: Box<RawEndpoint>,
    stream: TcpStream,
    start: Instant,
    held: Held,
    buf: Vec<u8>,
    /// Events other than send outcomes, in order.
    events: std::collections::VecDeque<RawEvent>,
    /// Send outcomes, by id, until asked for.
    outcomes: std::collections::HashMap<MsgId, Outcome>,
}

impl RawPeer {
    fn new(stream: TcpStream) -> Res<Self> {
        let start = Instant::now();
        let ep = RawEndpoint::new(config(), peerpipe_std::new_session_id(), ppc::Instant::ZERO)
            .map_err(|e| e.to_string())?;
        let mut peer = RawPeer {
            ep: Box::new(ep),
            stream,
            start,
            held: Held::default(),
            buf: vec![0; RAW_FRAME],
            events: Default::default(),
            outcomes: Default::default(),
        };
        peer.transmit()?;
        Ok(peer)
    }

    fn now(&self) -> ppc::Instant {
        ppc::Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    fn transmit(&mut self) -> Res<()> {
        let now = self.now();
        let mut out = Vec::new();
        while let Some(n) = self
            .ep
            .poll_transmit_from(now, &mut self.buf, &mut self.held)
            .map_err(|e| e.to_string())?
        {
            out.extend_from_slice(&self.buf[..n]);
        }
        if !out.is_empty() {
            self.stream.write_all(&out).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// One turn: waits up to `wait` (less when a deadline comes first) for bytes, feeds them,
    /// acts on deadlines, queues the events, transmits.
    fn turn(&mut self, wait: Duration) -> Res<()> {
        let now = self.now();
        let until_deadline = self
            .ep
            .poll_timeout()
            .map(|t| Duration::from_micros(t.as_micros().saturating_sub(now.as_micros())))
            .unwrap_or(wait);
        let wait = wait.min(until_deadline).max(Duration::from_micros(200));
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => return Err("the proxy closed the raw peer's connection".into()),
            Ok(n) => {
                let now = self.now();
                self.ep.handle_bytes(now, &chunk[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
        let now = self.now();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        while let Some(e) = self.ep.poll_event() {
            match e {
                ppc::Event::SendOutcome { id, outcome } => {
                    self.outcomes.insert(id, outcome);
                }
                other => self.events.push_back(other),
            }
        }
        self.transmit()
    }

    /// Turns until `f` takes an event (events it does not take are dropped; send outcomes are
    /// kept apart for [`outcome`](Self::outcome)), within `timeout`.
    fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&mut Self, RawEvent) -> Res<Option<T>>,
    ) -> Res<T> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(e) = self.events.pop_front() {
                if let Some(t) = f(self, e)? {
                    return Ok(t);
                }
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("raw peer: no {what} within {timeout:?}"))?;
            self.turn(left.min(Duration::from_millis(50)))?;
        }
    }

    /// Sends `data` (any length) as a request on `topic`, from the peer's source.
    fn send_long(&mut self, topic: &str, data: Vec<u8>, fail_from: Option<u64>) -> Res<MsgId> {
        let now = self.now();
        let len = data.len() as u64;
        let id = self
            .ep
            .send_from(
                now,
                wire::Item::Request { topic },
                len,
                Some(ppc::Duration::from_secs(120)),
            )
            .map_err(|e| format!("send_from {topic} ({len} B): {e}"))?;
        self.held.msgs.push((id, data, fail_from));
        self.transmit()?;
        Ok(id)
    }

    /// Sends a short (inline) request.
    fn send_short(&mut self, topic: &str, data: &[u8]) -> Res<MsgId> {
        let now = self.now();
        let msg = ppc::Message::request(topic, data).map_err(|e| e.to_string())?;
        let id = self
            .ep
            .send(now, msg, Some(ppc::Duration::from_secs(20)))
            .map_err(|e| format!("send {topic}: {e}"))?;
        self.transmit()?;
        Ok(id)
    }

    /// The outcome of send `id`.
    fn outcome(&mut self, id: MsgId, timeout: Duration) -> Res<Outcome> {
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            if let Some(outcome) = self.outcomes.remove(&id) {
                break outcome;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("raw peer: no outcome for {id:?} within {timeout:?}"))?;
            self.turn(left.min(Duration::from_millis(50)))?;
        };
        self.held.msgs.retain(|(m, _, _)| *m != id);
        Ok(outcome)
    }

    /// A one-frame reply to `id` (other events: passed over).
    fn reply(&mut self, id: MsgId, timeout: Duration) -> Res<Vec<u8>> {
        self.wait_for("reply", timeout, |_, e| match e {
            ppc::Event::Message(m) if m.req_id() == Some(id) => Ok(Some(m.data().to_vec())),
            ppc::Event::Part(p) if matches!(p.kind(), PartKind::Reply { req_id } if req_id == id) => {
                Err(format!("reply to {id:?} in parts: a one-frame reply was expected"))
            }
            _ => Ok(None),
        })
    }

    /// The firmware's counters.
    fn stats(&mut self) -> Res<FwStats> {
        let id = self.send_short("stats", b"")?;
        let raw = self.reply(id, REQUEST_TIMEOUT)?;
        parse_stats(&raw)
    }
}

/// `len` bytes that look random (a CRC over them tells any error).
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// Byte `i` of the firmware's `gen` replies.
fn generated(i: usize) -> u8 {
    (i.wrapping_mul(31).wrapping_add(7) & 0xFF) as u8
}

/// The firmware's `max_message` (`qemu_echo::MAX_MESSAGE`).
const FW_MAX_MESSAGE: usize = 1 << 20;
/// The long request streamed into a CRC, and the generated reply.
const CRC_LEN: usize = 256 * 1024;
const GEN_LEN: u32 = 64 * 1024;
/// Generous: QEMU may share two cores with a parallel build (at about 10 KB/s, 256 KiB take
/// 26 s).
const LONG_TIMEOUT: Duration = Duration::from_secs(120);

/// Long messages through peerpipe-std's `request`: a 256 KiB `crc` request and a 64 KiB
/// `gen` reply, whole `Vec`s on the host.
fn std_long(h: &PipeHandler) -> Res<()> {
    let data = noise(CRC_LEN, 0xBEEF);
    let want = crc32fast::hash(&data);
    let req = Message::request("crc", data).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let reply = h
        .request(req, Some(LONG_TIMEOUT), None)
        .map_err(|e| format!("peerpipe-std crc request of {CRC_LEN} B: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    check(
        reply.data() == want.to_le_bytes(),
        &format!(
            "CRC-32 of {CRC_LEN} B through peerpipe-std: {:02x?}",
            reply.data()
        ),
    )?;
    say!(
        "peerpipe-std: crc of a {} KiB request ok, {secs:.2} s, {:.0} B/s payload host->fw",
        CRC_LEN / 1024,
        CRC_LEN as f64 / secs
    );
    let t = Instant::now();
    let got = request(h, "gen", &GEN_LEN.to_le_bytes())?;
    let secs = t.elapsed().as_secs_f64();
    check(
        got.len() == GEN_LEN as usize,
        &format!("gen reply of {} B", got.len()),
    )?;
    if let Some(i) = (0..got.len()).find(|&i| got[i] != generated(i)) {
        return Err(format!("peerpipe-std: gen byte {i} is {:#04x}", got[i]));
    }
    say!(
        "peerpipe-std: gen of {} KiB, every byte checked, {secs:.2} s, {:.0} B/s payload fw->host",
        GEN_LEN / 1024,
        f64::from(GEN_LEN) / secs
    );
    Ok(())
}

/// Messages of any size, through a core endpoint of the host's own over the proxy: a message
/// over the firmware's `max_message` (refused at once), a 256 KiB `crc` request, a 64 KiB
/// `gen` reply checked byte by byte, a `crc` request whose source fails half way (the
/// firmware sees it cut off). Prints the payload throughput each way.
fn stream_checks(proxy: &Arc<Proxy>) -> Res<()> {
    let mut p = RawPeer::new(proxy.new_raw()?)?;
    // No DATA goes out before the firmware's capabilities (its first heartbeat) are known.
    let deadline = Instant::now() + STATUS_TIMEOUT;
    while p.ep.peer_state() != ppc::PeerState::Up {
        if Instant::now() > deadline {
            return Err("raw peer: the firmware never answered".to_string());
        }
        p.turn(Duration::from_millis(20))?;
    }

    // Over the firmware's limit: refused at once, nothing sent.
    let id = p.send_long("crc", vec![0; FW_MAX_MESSAGE + 1], None)?;
    let outcome = p.outcome(id, Duration::from_secs(5))?;
    check(
        outcome == Outcome::Failed(FailReason::TooLarge),
        &format!("a message over the firmware's max_message fails with TooLarge ({outcome:?})"),
    )?;
    say!(
        "a {} B message (over the firmware's max_message) fails at once with TooLarge: ok",
        FW_MAX_MESSAGE + 1
    );

    // 256 KiB into the firmware's running CRC.
    let data = noise(CRC_LEN, 0xC0FFEE);
    let want = crc32fast::hash(&data);
    let (to0, from0) = proxy.bytes();
    let t = Instant::now();
    let id = p.send_long("crc", data, None)?;
    let got = p.reply(id, LONG_TIMEOUT)?;
    let secs = t.elapsed().as_secs_f64();
    let (to1, from1) = proxy.bytes();
    check(
        got == want.to_le_bytes(),
        &format!("CRC-32 of {CRC_LEN} B: firmware {got:02x?}, host {want:08x}"),
    )?;
    check(
        p.outcome(id, LONG_TIMEOUT)? == Outcome::Delivered,
        "the long request is delivered",
    )?;
    say!(
        "crc of a {} KiB request: {want:08x} matches crc32fast; {secs:.2} s, {:.0} B/s payload host->fw ({:.0} B/s on the wire; {:.1} % overhead, fw->host {} B of ACKs)",
        CRC_LEN / 1024,
        CRC_LEN as f64 / secs,
        (to1 - to0) as f64 / secs,
        ((to1 - to0) as f64 / CRC_LEN as f64 - 1.0) * 100.0,
        from1 - from0
    );

    // 64 KiB generated by the firmware, checked byte by byte as the parts come.
    let (to0, from0) = proxy.bytes();
    let t = Instant::now();
    let id = p.send_short("gen", &GEN_LEN.to_le_bytes())?;
    let mut next = 0usize;
    let mut parts = 0usize;
    p.wait_for("gen reply", LONG_TIMEOUT, |_, e| match e {
        ppc::Event::Part(part) if part.kind() == (PartKind::Reply { req_id: id }) => {
            if part.offset() as usize != next || part.total() != u64::from(GEN_LEN) {
                return Err(format!(
                    "gen part at {} of {} (expected {next} of {GEN_LEN})",
                    part.offset(),
                    part.total()
                ));
            }
            if let Some(k) = (0..part.data().len()).find(|&k| part.data()[k] != generated(next + k))
            {
                return Err(format!("gen byte {} is {:#04x}", next + k, part.data()[k]));
            }
            next += part.data().len();
            parts += 1;
            Ok(part.is_last().then_some(()))
        }
        ppc::Event::Cut { id: cut, reason } => Err(format!("gen reply {cut:?} cut: {reason}")),
        _ => Ok(None),
    })?;
    let secs = t.elapsed().as_secs_f64();
    let (to1, from1) = proxy.bytes();
    check(next == GEN_LEN as usize, "every generated byte arrived")?;
    say!(
        "gen of {} KiB: every byte checked, {parts} parts; {secs:.2} s, {:.0} B/s payload fw->host ({:.0} B/s on the wire, host->fw {} B of ACKs)",
        GEN_LEN / 1024,
        f64::from(GEN_LEN) / secs,
        (from1 - from0) as f64 / secs,
        to1 - to0
    );

    // A long request whose source fails after 4 KiB: the host gives it up, the firmware is
    // told (a Cut), drops its CRC and goes on.
    let before = p.stats()?;
    let id = p.send_long("crc", noise(16 * 1024, 7), Some(4096))?;
    let outcome = p.outcome(id, LONG_TIMEOUT)?;
    check(
        outcome == Outcome::Failed(FailReason::Unreadable),
        &format!("a request whose source fails is given up ({outcome:?})"),
    )?;
    // Requests after it: answered as usual (the firmware's floor moved past the rest).
    let small = noise(1000, 99);
    let id = p.send_long("crc", small.clone(), None)?;
    check(
        p.reply(id, REQUEST_TIMEOUT)? == crc32fast::hash(&small).to_le_bytes(),
        "a crc request after the cut one is answered",
    )?;
    let after = p.stats()?;
    check(
        after.cuts == before.cuts + 1,
        &format!(
            "the firmware saw one Cut ({} -> {})",
            before.cuts, after.cuts
        ),
    )?;
    say!(
        "a request cut off after 4 KiB (its source failed): the firmware saw the Cut and answered the next; {after:?}"
    );
    Ok(())
}

/// Waits for a status matching `want` from the async handler, skipping other items.
async fn async_status(
    h: &peerpipe_tokio::PipeHandler,
    what: &str,
    want: impl Fn(&Status) -> bool,
) -> Res<()> {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(item) = h.recv().await {
            match item {
                Item::Status(s) if want(&s) => return true,
                other => seen.push(format!("{other:?}")),
            }
        }
        false
    };
    match tokio::time::timeout(STATUS_TIMEOUT, wait).await {
        Ok(true) => Ok(()),
        _ => Err(format!(
            "no {what} within {STATUS_TIMEOUT:?} (async; saw {seen:?})"
        )),
    }
}

/// Waits for a status matching `want`, skipping other items.
fn wait_status(h: &PipeHandler, what: &str, want: impl Fn(&Status) -> bool) -> Res<()> {
    let deadline = Instant::now() + STATUS_TIMEOUT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match h.recv_timeout(left) {
            Some(Item::Status(s)) if want(&s) => return Ok(()),
            Some(other) => seen.push(format!("{other:?}")),
            None => break,
        }
    }
    Err(format!(
        "no {what} within {STATUS_TIMEOUT:?} (saw {seen:?})"
    ))
}

fn check(cond: bool, what: &str) -> Res<()> {
    if cond {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

/// Bytes of one DATA frame on the wire for a payload of `len` (topic "echo"), from the core.
fn frame_len(len: usize) -> usize {
    use peerpipe_std::peerpipe_core::{Config as CoreConfig, Endpoint, Instant as CoreInstant};
    let now = CoreInstant::ZERO;
    let mut ep: Endpoint<512, 32, 4, 4, 700> = match Endpoint::new(CoreConfig::default(), 1, now) {
        Ok(ep) => ep,
        Err(_) => return 0,
    };
    let mut buf = [0u8; 700];
    // The first frame is the start-up heartbeat; DATA goes once the peer's capabilities
    // (its first heartbeat) are known.
    let _ = ep.poll_transmit(now, &mut buf);
    let Ok(mut peer) = Endpoint::<512, 32, 4, 4, 700>::new(CoreConfig::default(), 2, now) else {
        return 0;
    };
    if let Ok(Some(n)) = peer.poll_transmit(now, &mut buf) {
        ep.handle_bytes(now, &buf[..n]);
    }
    let msg = peerpipe_std::peerpipe_core::Message::request("echo", &vec![0xA5; len]);
    let Ok(msg) = msg else { return 0 };
    if ep.send(now, msg, None).is_err() {
        return 0;
    }
    ep.poll_transmit(now, &mut buf).ok().flatten().unwrap_or(0)
}

/// Runs the minimal firmware (feature `stack-probe`) through requests of every size,
/// pipelined requests, garbage and requests in parts, and returns its stack high-water
/// mark.
fn probe_stack(board: Board, elf: &str) -> Res<u32> {
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

fn run(board: Board, elf: &str) -> Res<()> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let proxy = Arc::new(Proxy::default());

    // ---- QEMU run 1
    let t0 = Instant::now();
    let mut qemu = spawn_qemu(board, elf, port)?;
    proxy.accept_qemu(&listener)?;
    let h1 = proxy.new_handler()?;
    let first = stats(&h1)?;
    say!(
        "firmware up in {:.2} s: {first:?}",
        t0.elapsed().as_secs_f64()
    );

    for len in [0usize, 1, 8, 64, 100, 128] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        echo(&h1, &data)?;
    }
    say!("echo of 0/1/8/64/100/128 B: ok");
    // A payload larger than the firmware's 128-byte frames arrives there in parts; the
    // firmware echoes at most 128 B and refuses it with `too-long`. (What it cannot take at
    // all, over its max_message, fails on the host at once: see the long messages below.)
    check(
        request(&h1, "echo", &[7u8; 129])? == b"too-long",
        "a 129-byte echo is refused with too-long (the firmware echoes 128 B at most)",
    )?;
    let short = noise(5000, 5);
    check(
        request(&h1, "crc", &short)? == crc32fast::hash(&short).to_le_bytes(),
        "the CRC-32 of a 5000-byte request (40 parts) through peerpipe-std",
    )?;
    say!("a 129-byte echo is refused with too-long; crc of 5000 B through peerpipe-std: ok");
    std_long(&h1)?;

    // Wire bytes per request/reply round trip, both directions, measured at the proxy.
    for len in [8usize, 64, 128] {
        let data = vec![0x5Au8; len];
        thread::sleep(Duration::from_millis(50));
        let rounds = 20;
        let (to0, from0) = proxy.bytes();
        for _ in 0..rounds {
            echo(&h1, &data)?;
        }
        let (to1, from1) = proxy.bytes();
        say!(
            "wire per {len} B request+reply (incl. ACKs, heartbeats): host->fw {:.1} B, fw->host {:.1} B",
            (to1 - to0) as f64 / rounds as f64,
            (from1 - from0) as f64 / rounds as f64
        );
    }
    for len in [8usize, 64, 128, 256] {
        say!(
            "DATA frame for a {len} B payload (topic \"echo\"): {} B on the wire ({:.0}% overhead)",
            frame_len(len),
            (frame_len(len) as f64 - len as f64) * 100.0 / len as f64
        );
    }

    // Throughput: 4 callers pipelining 128-byte requests.
    let per_thread = 50;
    let start = Instant::now();
    let errors: Vec<String> = thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let h = &h1;
                s.spawn(move || -> Res<()> {
                    for i in 0..per_thread {
                        let data: Vec<u8> = (0..128).map(|j| (i + j + t) as u8).collect();
                        echo(h, &data)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().unwrap().err())
            .collect()
    });
    if let Some(e) = errors.first() {
        return Err(e.clone());
    }
    let secs = start.elapsed().as_secs_f64();
    let n = 4 * per_thread;
    say!(
        "throughput: {n} x 128 B request+reply in {secs:.2} s: {:.0} round trips/s, {:.1} KB/s payload each way",
        n as f64 / secs,
        n as f64 * 128.0 / secs / 1000.0
    );

    // Garbage: 4 KiB of noise straight into the firmware's RX, then business as usual.
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    proxy.inject(&garbage)?;
    echo(&h1, b"after the garbage")?;
    let s = stats(&h1)?;
    check(s.dropped > 0, "the firmware counted dropped garbage frames")?;
    say!(
        "4 KiB of garbage survived; firmware dropped {} frames",
        s.dropped
    );

    // END from the firmware; it then starts a new conversation (new session).
    check(request(&h1, "end", b"")? == b"ok", "end acknowledged")?;
    wait_status(&h1, "END from the firmware", |s| {
        *s == Status::End(b"fw-end".to_vec())
    })?;
    wait_status(&h1, "PeerRestarted after END", |s| {
        *s == Status::PeerRestarted
    })?;
    echo(&h1, b"new conversation")?;
    say!("END firmware->host, then a new conversation: ok");

    // ABORT from the firmware, likewise.
    check(request(&h1, "abort", b"")? == b"ok", "abort acknowledged")?;
    wait_status(&h1, "ABORT from the firmware", |s| {
        *s == Status::Abort(b"fw-abort".to_vec())
    })?;
    wait_status(&h1, "PeerRestarted after ABORT", |s| {
        *s == Status::PeerRestarted
    })?;
    echo(&h1, b"again")?;
    say!("ABORT firmware->host, then a new conversation: ok");

    // END from the host: the firmware counts it; the next handler talks to its next session.
    h1.notify_end(b"host-end".to_vec())
        .map_err(|e| format!("notify_end: {e}"))?;
    h1.stop(true);
    let h2 = proxy.new_handler()?;
    let s = stats(&h2)?;
    check(s.ends == 1, "the firmware counted the host's END")?;
    h2.notify_abort(b"host-abort".to_vec())
        .map_err(|e| format!("notify_abort: {e}"))?;
    h2.stop(true);
    let h3 = proxy.new_handler()?;
    let s = stats(&h3)?;
    check(s.aborts == 1, "the firmware counted the host's ABORT")?;
    say!("END and ABORT host->firmware counted: {s:?}");
    let ratio = f64::from(s.uptime_ms) / t0.elapsed().as_millis() as f64;
    say!("firmware clock / host clock = {ratio:.2}");
    check(
        (0.5..1.5).contains(&ratio),
        "the firmware's clock runs at about real time",
    )?;

    // Kill QEMU: the host sees GONE (silence; the proxy keeps the handler's socket).
    drop(qemu);
    proxy.forget_qemu();
    let killed = Instant::now();
    wait_status(&h3, "GONE after QEMU was killed", |s| {
        matches!(s, Status::Gone { .. })
    })?;
    say!(
        "QEMU killed -> GONE after {:.2} s",
        killed.elapsed().as_secs_f64()
    );

    // ---- QEMU run 2: the same handler sees the firmware come back as a restart.
    qemu = spawn_qemu(board, elf, port)?;
    proxy.accept_qemu(&listener)?;
    wait_status(&h3, "PeerRestarted from the second QEMU run", |s| {
        *s == Status::PeerRestarted
    })?;
    echo(&h3, b"second boot")?;
    let s = stats(&h3)?;
    check(
        s.ends == 0 && s.requests == 2,
        "fresh counters after reboot",
    )?;
    say!("second QEMU run -> PeerRestarted, requests answered: ok");
    say!(
        "firmware stack high-water mark {} B ({}, stack painting)",
        s.stack_used,
        board.target()
    );
    h3.stop(true);

    // Messages of any size, through a core endpoint of the host's own (a new session: the
    // firmware sees a restart).
    stream_checks(&proxy)?;
    drop(qemu);

    // ---- QEMU run 3: the same firmware driven by the async driver (peerpipe-tokio).
    let qemu = spawn_qemu(board, elf, port)?;
    let stream = accept_qemu(&listener)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run_tokio(stream, qemu))
}

/// Echo of several sizes from concurrent tasks, END from the firmware, GONE when QEMU is
/// killed: through peerpipe-tokio.
async fn run_tokio(stream: TcpStream, qemu: Qemu) -> Res<()> {
    use peerpipe_tokio::PipeHandler as AsyncHandler;

    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
    let h: AsyncHandler = AsyncHandler::start(stream, config()).map_err(|e| e.to_string())?;
    let tasks: Vec<_> = (0..8usize)
        .map(|t| {
            let h = h.clone();
            tokio::spawn(async move {
                for len in [0usize, 1, 8, 64, 100, 128] {
                    let data: Vec<u8> = (0..len).map(|i| (i + t) as u8).collect();
                    let req = Message::request("echo", data.clone()).map_err(|e| e.to_string())?;
                    let reply = h
                        .request(req, Some(REQUEST_TIMEOUT))
                        .await
                        .map_err(|e| format!("async echo of {len} B: {e}"))?;
                    if !reply.data().iter().rev().eq(data.iter()) {
                        return Err(format!("async echo of {len} B came back wrong"));
                    }
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    say!("peerpipe-tokio: 8 tasks x echo of 0/1/8/64/100/128 B: ok");
    let ok = h
        .request(
            Message::request("end", Vec::new()).map_err(|e| e.to_string())?,
            Some(REQUEST_TIMEOUT),
        )
        .await
        .map_err(|e| format!("async end request: {e}"))?;
    check(ok.data() == b"ok", "end acknowledged")?;
    async_status(&h, "END from the firmware", |s| {
        *s == Status::End(b"fw-end".to_vec())
    })
    .await?;
    async_status(&h, "PeerRestarted after END", |s| {
        *s == Status::PeerRestarted
    })
    .await?;
    let req = Message::request("echo", b"new".to_vec()).map_err(|e| e.to_string())?;
    h.request(req, Some(REQUEST_TIMEOUT))
        .await
        .map_err(|e| format!("async echo after END: {e}"))?;
    say!("peerpipe-tokio: END firmware->host, then a new conversation: ok");
    drop(qemu);
    async_status(&h, "GONE after QEMU was killed", |s| {
        matches!(s, Status::Gone { .. })
    })
    .await?;
    say!("peerpipe-tokio: QEMU killed -> GONE: ok");
    h.stop();
    h.closed().await;
    Ok(())
}

const USAGE: &str = "usage: qemu_host [--stack] FIRMWARE_ELF [lm3s6965evb|microbit|virt]";

struct Args {
    /// Measure the stack of a `stack-probe` build instead of running the checks.
    stack: bool,
    elf: String,
    board: Board,
}

/// Parses the command line; `Ok(None)` means help was asked for.
fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{Long, Short, Value, ValueExt};
    let (mut stack, mut elf, mut board) = (false, None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("stack") => stack = true,
            Short('h') | Long("help") => return Ok(None),
            Value(v) if elf.is_none() => elf = Some(v.string()?),
            Value(v) if board.is_none() => board = Some(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    let elf = elf.ok_or("no FIRMWARE_ELF given")?;
    let board = Board::find(board.as_deref(), &elf)
        .ok_or("unknown board (give lm3s6965evb, microbit or virt)")?;
    Ok(Some(Args { stack, elf, board }))
}

fn main() -> ExitCode {
    let Args { stack, elf, board } = cli::parse_or_exit("qemu-host", USAGE, parse_args);
    let elf = &elf;
    let start = *START.get_or_init(Instant::now);
    say!(
        "board {} ({}), firmware {elf}",
        board.name(),
        board.target()
    );
    if stack {
        return match probe_stack(board, elf) {
            Ok(used) => {
                println!("stack={used}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qemu-host: FAILED: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(board, elf) {
        Ok(()) => {
            println!(
                "qemu-host: all checks passed in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qemu-host: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
