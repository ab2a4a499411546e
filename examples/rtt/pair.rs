//! Two started handlers over a fresh transport: round trips of `rtt` requests, and
//! acknowledged one-way messages from many threads or pipelined from one.

use super::*;

/// TLS's two sides, for `--tls`.
pub(crate) type Tls = (peerpipe_std::TlsServer, peerpipe_std::TlsClient);

/// Two connected handlers over a fresh transport of `kind` (over TLS with `tls`, TCP only):
/// (client, server), not started.
pub(crate) fn handlers(
    kind: Kind,
    config: Config,
    tls: Option<&Tls>,
) -> Result<(PipeHandler, PipeHandler), String> {
    Ok(match kind {
        Kind::Tcp if tls.is_some() => {
            let (server, client) = tls.ok_or("no TLS")?;
            let listen = TcpTransport::listen_tls("127.0.0.1:0", server).map_err(err)?;
            let addr = listen.local_addr().ok_or("no local address")?;
            let connect = TcpTransport::connect_tls(addr, client).map_err(err)?;
            (
                PipeHandler::new(connect, config).map_err(err)?,
                PipeHandler::new(listen, config).map_err(err)?,
            )
        }
        Kind::Memory => {
            let (a, b) = memory_pair();
            (
                PipeHandler::new(a, config).map_err(err)?,
                PipeHandler::new(b, config).map_err(err)?,
            )
        }
        Kind::Tcp => {
            let listen = TcpTransport::listen("127.0.0.1:0").map_err(err)?;
            let addr = listen.local_addr().ok_or("no local address")?;
            let connect = TcpTransport::connect(addr).map_err(err)?;
            (
                PipeHandler::new(connect, config).map_err(err)?,
                PipeHandler::new(listen, config).map_err(err)?,
            )
        }
        Kind::Unix => {
            let path = socket_path("pipe");
            let listen = UnixTransport::listen(&path).map_err(err)?;
            (
                PipeHandler::new(UnixTransport::connect(&path), config).map_err(err)?,
                PipeHandler::new(listen, config).map_err(err)?,
            )
        }
    })
}

/// What the server's callback counts of the one-way messages.
#[derive(Default)]
pub(crate) struct Oneway {
    received: AtomicU64,
    /// Nanoseconds since the pair was set up at which the last one arrived.
    last_ns: AtomicU64,
}

/// A started client/server pair: the server answers `rtt` requests from its message callback
/// and counts `oneway` messages.
pub(crate) struct Pair {
    client: PipeHandler,
    server: PipeHandler,
    origin: Instant,
    oneway: Arc<Oneway>,
    /// Anything unexpected either side saw: it spoils the run.
    problems: Arc<Mutex<Vec<String>>>,
    payload: Vec<u8>,
}

impl Pair {
    pub(crate) fn new(kind: Kind, payload: usize, tls: Option<&Tls>) -> Result<Pair, String> {
        let config = Config {
            // Generous: a loaded 2-core machine must never see the peer as gone mid-run.
            heartbeat_timeout: Duration::from_secs(60),
            default_request_timeout: TIMEOUT,
            ..Config::default()
        };
        let (client, server) = handlers(kind, config, tls)?;
        let origin = Instant::now();
        let oneway = Arc::new(Oneway::default());
        let problems = Arc::new(Mutex::new(Vec::<String>::new()));
        server.set_message_cb({
            let (server, oneway, problems) = (server.clone(), oneway.clone(), problems.clone());
            move |msg: Message| match msg.topic() {
                "rtt" => {
                    let reply = msg.reply_to(msg.data().to_vec());
                    if let Err(e) = reply.and_then(|r| server.send_no_wait(r)) {
                        problems.lock().unwrap().push(format!("server: reply: {e}"));
                    }
                }
                "oneway" => {
                    let t = origin.elapsed().as_nanos() as u64;
                    oneway.last_ns.fetch_max(t, Ordering::Relaxed);
                    oneway.received.fetch_add(1, Ordering::Relaxed);
                }
                other => problems
                    .lock()
                    .unwrap()
                    .push(format!("server: unexpected topic {other}")),
            }
        });
        for (side, h) in [("client", &client), ("server", &server)] {
            let problems = problems.clone();
            h.set_status_cb(move |s: Status| {
                problems.lock().unwrap().push(format!("{side}: {s:?}"));
            });
        }
        // The listening end first: its transport accepts on its I/O thread.
        server.start().map_err(err)?;
        client.start().map_err(err)?;
        Ok(Pair {
            client,
            server,
            origin,
            oneway,
            problems,
            payload: (0..payload).map(|i| (i * 7 + 1) as u8).collect(),
        })
    }

    pub(crate) fn round_trip(&self) -> Result<Duration, String> {
        let req = Message::request("rtt", self.payload.clone()).map_err(err)?;
        let t0 = Instant::now();
        let reply = self.client.request(req, Some(TIMEOUT), None).map_err(err)?;
        let elapsed = t0.elapsed();
        if reply.data() != self.payload.as_slice() {
            return Err("the reply's data differs".into());
        }
        Ok(elapsed)
    }

    /// `count` acknowledged one-way messages from `threads` threads; messages per second
    /// handled by the server, from the first send until the last one arrived.
    pub(crate) fn throughput(&self, count: usize, threads: usize) -> Result<f64, String> {
        let threads = threads.min(count);
        let barrier = Arc::new(Barrier::new(threads + 1));
        let mut senders = Vec::new();
        for t in 0..threads {
            let n = count / threads + usize::from(t < count % threads);
            let (client, barrier) = (self.client.clone(), barrier.clone());
            let msgs: Vec<Message> = (0..n)
                .map(|_| Message::request("oneway", self.payload.clone()))
                .collect::<Result<_, _>>()
                .map_err(err)?;
            senders.push(std::thread::spawn(move || -> Result<(), String> {
                barrier.wait();
                for msg in msgs {
                    client
                        .send_to_peer(msg, Some(TIMEOUT), None)
                        .map_err(|e| format!("send_to_peer: {e}"))?;
                }
                Ok(())
            }));
        }
        let before = self.oneway.received.load(Ordering::Relaxed);
        barrier.wait();
        let t0 = self.origin.elapsed().as_nanos() as u64;
        for s in senders {
            s.join().map_err(|_| "a sender thread panicked")??;
        }
        // Every send was acknowledged: the server's endpoint accepted it. Its callback may
        // still be running for the last few.
        self.rate_since(before, count, t0)
    }

    /// `count` acknowledged one-way messages from this thread, which keeps up to `window`
    /// of them in flight ([`PipeHandler::send_pipelined`]); messages per second handled by
    /// the server, from the first send until the last one arrived.
    pub(crate) fn pipelined(&self, count: usize, window: usize) -> Result<f64, String> {
        let before = self.oneway.received.load(Ordering::Relaxed);
        let msgs: Vec<Message> = (0..count)
            .map(|_| Message::request("oneway", self.payload.clone()))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut in_flight: std::collections::VecDeque<peerpipe_std::PendingSend> =
            std::collections::VecDeque::with_capacity(window);
        let t0 = self.origin.elapsed().as_nanos() as u64;
        for msg in msgs {
            if in_flight.len() == window {
                if let Some(ticket) = in_flight.pop_front() {
                    ticket.wait().map_err(|e| format!("pipelined send: {e}"))?;
                }
            }
            let ticket = self
                .client
                .send_pipelined(msg, Some(TIMEOUT))
                .map_err(|e| format!("send_pipelined: {e}"))?;
            in_flight.push_back(ticket);
        }
        for ticket in in_flight {
            ticket.wait().map_err(|e| format!("pipelined send: {e}"))?;
        }
        self.rate_since(before, count, t0)
    }

    /// Waits until the server handled `count` one-way messages after the `before` it had;
    /// their rate from `t0` (nanoseconds since `origin`) until the last one arrived.
    pub(crate) fn rate_since(&self, before: u64, count: usize, t0: u64) -> Result<f64, String> {
        let wait_until = Instant::now() + TIMEOUT;
        let target = before + count as u64;
        while self.oneway.received.load(Ordering::Relaxed) < target && Instant::now() < wait_until {
            std::thread::sleep(Duration::from_micros(50));
        }
        let received = self.oneway.received.load(Ordering::Relaxed) - before;
        if received != count as u64 {
            return Err(format!(
                "throughput: the server handled {received} of {count} messages"
            ));
        }
        let last = self.oneway.last_ns.load(Ordering::Relaxed);
        let span = Duration::from_nanos(last.saturating_sub(t0));
        Ok(received as f64 / span.as_secs_f64().max(1e-9))
    }

    /// Ends the conversation; fails if anything unexpected happened.
    pub(crate) fn finish(self) -> Result<(), String> {
        self.client
            .notify_end(b"done".to_vec())
            .map_err(|e| format!("notify_end: {e}"))?;
        self.client.stop(true);
        self.server.stop(true);
        let problems = self.problems.lock().unwrap();
        // The server sees the client's END; anything else spoils the run.
        let unexpected: Vec<&String> = problems
            .iter()
            .filter(|s| !s.starts_with("server: End"))
            .collect();
        if unexpected.is_empty() {
            Ok(())
        } else {
            Err(format!("unexpected events: {unexpected:?}"))
        }
    }
}
