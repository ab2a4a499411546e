//! The bare ping-pong the round trips are compared with: two threads bouncing a payload
//! over the same kind of transport without peerpipe, blocking or polling.

use super::*;

/// The next message from `rx`: polled (yielding between polls) with `spin`, else blocking;
/// bounded by [`TIMEOUT`] either way.
pub(crate) fn recv(
    rx: &crossbeam_channel::Receiver<Vec<u8>>,
    spin: bool,
) -> Result<Vec<u8>, String> {
    if !spin {
        return rx.recv_timeout(TIMEOUT).map_err(err);
    }
    let until = Instant::now() + TIMEOUT;
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(crossbeam_channel::TryRecvError::Empty) if Instant::now() < until => {
                std::thread::yield_now()
            }
            Err(e) => return Err(err(e)),
        }
    }
}

/// Two threads bouncing a payload over a bare transport, one round trip at a time.
pub(crate) enum Raw {
    Memory {
        to_echo: crossbeam_channel::Sender<Vec<u8>>,
        from_echo: crossbeam_channel::Receiver<Vec<u8>>,
        payload: Vec<u8>,
        spin: bool,
        echo: JoinHandle<()>,
    },
    Stream {
        stream: Box<dyn ReadWrite>,
        out: Vec<u8>,
        back: Vec<u8>,
        spin: bool,
        echo: JoinHandle<()>,
    },
}

pub(crate) trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// `read_exact` that polls a non-blocking stream, yielding the CPU between polls.
pub(crate) fn read_spinning(s: &mut dyn ReadWrite, mut buf: &mut [u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match s.read(buf) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `write_all` on a non-blocking stream, yielding the CPU while it is full.
pub(crate) fn write_spinning(s: &mut dyn ReadWrite, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Raw {
    /// A ping-pong over `kind`: with `spin`, both threads poll (yielding the CPU between
    /// polls) instead of blocking, as the handlers do before they sleep.
    pub(crate) fn new(kind: Kind, payload: usize, spin: bool) -> Result<Raw, String> {
        let stream_pair = |a: Box<dyn ReadWrite>, mut b: Box<dyn ReadWrite>| {
            // At least one byte, so that an empty payload still makes a round trip.
            let n = payload.max(1);
            let echo = std::thread::spawn(move || {
                let mut buf = vec![0u8; n];
                if spin {
                    while read_spinning(&mut *b, &mut buf).is_ok()
                        && write_spinning(&mut *b, &buf).is_ok()
                    {}
                } else {
                    while b.read_exact(&mut buf).is_ok() && b.write_all(&buf).is_ok() {}
                }
            });
            Raw::Stream {
                stream: a,
                out: vec![0xa5; n],
                back: vec![0; n],
                spin,
                echo,
            }
        };
        Ok(match kind {
            Kind::Memory => {
                let (to_echo, echo_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
                let (echo_tx, from_echo) = crossbeam_channel::unbounded::<Vec<u8>>();
                let echo = std::thread::spawn(move || {
                    while let Ok(v) = recv(&echo_rx, spin) {
                        if echo_tx.send(v).is_err() {
                            return;
                        }
                    }
                });
                Raw::Memory {
                    to_echo,
                    from_echo,
                    payload: vec![0xa5; payload],
                    spin,
                    echo,
                }
            }
            Kind::Tcp => {
                let listener = TcpListener::bind("127.0.0.1:0").map_err(err)?;
                let a = TcpStream::connect(listener.local_addr().map_err(err)?).map_err(err)?;
                let b = listener.accept().map_err(err)?.0;
                a.set_nodelay(true).map_err(err)?;
                b.set_nodelay(true).map_err(err)?;
                a.set_nonblocking(spin).map_err(err)?;
                b.set_nonblocking(spin).map_err(err)?;
                stream_pair(Box::new(a), Box::new(b))
            }
            Kind::Unix => {
                let (a, b) = UnixStream::pair().map_err(err)?;
                a.set_nonblocking(spin).map_err(err)?;
                b.set_nonblocking(spin).map_err(err)?;
                stream_pair(Box::new(a), Box::new(b))
            }
        })
    }

    pub(crate) fn round_trip(&mut self) -> Result<Duration, String> {
        let t0 = Instant::now();
        match self {
            Raw::Memory {
                to_echo,
                from_echo,
                payload,
                spin,
                ..
            } => {
                to_echo.send(payload.clone()).map_err(err)?;
                let back = recv(from_echo, *spin).map_err(err)?;
                let elapsed = t0.elapsed();
                if back != *payload {
                    return Err("raw: the echo differs".into());
                }
                Ok(elapsed)
            }
            Raw::Stream {
                stream,
                out,
                back,
                spin: true,
                ..
            } => {
                write_spinning(&mut **stream, out).map_err(err)?;
                read_spinning(&mut **stream, back).map_err(err)?;
                let elapsed = t0.elapsed();
                if back != out {
                    return Err("raw: the echo differs".into());
                }
                Ok(elapsed)
            }
            Raw::Stream {
                stream, out, back, ..
            } => {
                stream.write_all(out).map_err(err)?;
                stream.read_exact(back).map_err(err)?;
                let elapsed = t0.elapsed();
                if back != out {
                    return Err("raw: the echo differs".into());
                }
                Ok(elapsed)
            }
        }
    }

    pub(crate) fn finish(self) {
        match self {
            Raw::Memory { to_echo, echo, .. } => {
                drop(to_echo);
                let _ = echo.join();
            }
            Raw::Stream { stream, echo, .. } => {
                drop(stream);
                let _ = echo.join();
            }
        }
    }
}

// --- peerpipe ----------------------------------------------------------------------------------
