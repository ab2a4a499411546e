//! TLS over TCP (feature `tls`): the handshake, done blocking before the link exists, and
//! the two halves of a TLS connection that the I/O thread reads and any thread writes.
//!
//! The handshake reads one TLS record at a time, so that nothing the peer sends after it
//! (its first frames) is taken from the socket before the I/O thread polls it: bytes left
//! inside rustls would announce no readiness. The client then waits for the server's first
//! record after the handshake (a session ticket, which peerpipe's servers always send, or
//! the refusal of the client's certificate, which TLS 1.3 reports only then), so that a
//! refused client learns it when it connects.
//!
//! The reader and the writer share the rustls connection behind a lock that is never held
//! across a socket call: the reader reads the socket first and decrypts under the lock; the
//! writer encrypts under the lock into its own buffer and writes it after.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use peerpipe_host::tls::refusal as refused;
use peerpipe_host::tls::rustls::{
    pki_types::ServerName, ClientConfig, ClientConnection, Connection, ServerConfig,
    ServerConnection,
};
use peerpipe_host::{TlsClient, TlsServer};

/// The longest TLS record on the wire: a header and 16 KiB plus the most a cipher adds.
const MAX_RECORD: usize = 5 + 16 * 1024 + 256;

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 16 * 1024 + 512;

/// Plaintext encrypted at once by a write.
const WRITE_CHUNK: usize = 64 * 1024;

/// What the ACTIVE end connects with.
#[derive(Clone)]
pub(crate) struct ClientTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl ClientTls {
    pub(crate) fn new(tls: &TlsClient) -> io::Result<Self> {
        Ok(ClientTls {
            config: tls.config().map_err(io::Error::other)?,
            name: tls.server_name().clone(),
        })
    }
}

/// What the PASSIVE end accepts with.
pub(crate) fn server_config(tls: &TlsServer) -> io::Result<Arc<ServerConfig>> {
    tls.config().map_err(io::Error::other)
}

/// A TCP connection whose TLS handshake is done.
pub(crate) struct TlsStream {
    pub(crate) tcp: TcpStream,
    conn: Connection,
}

/// Connects TLS over `tcp` (the ACTIVE end), within `timeout`.
pub(crate) fn connect(tcp: TcpStream, tls: &ClientTls, timeout: Duration) -> io::Result<TlsStream> {
    let conn =
        ClientConnection::new(tls.config.clone(), tls.name.clone()).map_err(|e| refused(&e))?;
    handshake(tcp, conn.into(), timeout)
}

/// Accepts TLS over `tcp` (the PASSIVE end), within `timeout`. A refusal is logged here.
pub(crate) fn accept(
    tcp: TcpStream,
    config: &Arc<ServerConfig>,
    timeout: Duration,
) -> io::Result<TlsStream> {
    let peer = tcp.peer_addr().ok();
    let conn = ServerConnection::new(config.clone()).map_err(|e| refused(&e))?;
    handshake(tcp, conn.into(), timeout).inspect_err(|e| {
        log::warn!(
            "peerpipe: refused a TLS connection from {}: {e}",
            peer.map_or_else(|| "?".to_string(), |p| p.to_string())
        );
    })
}

fn handshake(tcp: TcpStream, mut conn: Connection, timeout: Duration) -> io::Result<TlsStream> {
    let deadline = Instant::now() + timeout.max(Duration::from_millis(1));
    tcp.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    loop {
        send_all(&mut conn, &tcp)?;
        if !conn.is_handshaking() {
            break;
        }
        read_record(&tcp, &mut conn, deadline)?;
    }
    if matches!(conn, Connection::Client(_)) {
        // The server's verdict on this client's certificate (TLS 1.3 sends it after the
        // client's handshake is over): a session ticket, or an alert. A server that sends
        // no ticket leaves the client waiting until the deadline, then it goes on.
        match read_record(&tcp, &mut conn, deadline) {
            Ok(()) => send_all(&mut conn, &tcp)?,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "TLS: the server closed the connection after the handshake",
                ))
            }
            Err(e) => return Err(e),
        }
    }
    tcp.set_read_timeout(None)?;
    tcp.set_write_timeout(None)?;
    Ok(TlsStream { tcp, conn })
}

/// Writes everything rustls has to send (blocking, within the socket's timeout).
fn send_all(conn: &mut Connection, mut tcp: &TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(&mut tcp).map_err(timed_out)?;
    }
    Ok(())
}

fn timed_out(e: io::Error) -> io::Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
    } else {
        e
    }
}

/// Reads exactly `buf` before `deadline`.
fn read_exact_until(tcp: &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(io::ErrorKind::TimedOut.into()));
        }
        tcp.set_read_timeout(Some(left))?;
        match (&*tcp).read(buf.get_mut(done..).unwrap_or(&mut [])) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "TLS: the peer closed the connection during the handshake",
                ))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(timed_out(e)),
        }
    }
    Ok(())
}

/// Reads one TLS record and gives it to rustls; a refusal (this end's or the peer's) is an
/// error, after the alert that says why went to the peer.
fn read_record(tcp: &TcpStream, conn: &mut Connection, deadline: Instant) -> io::Result<()> {
    let mut record = vec![0u8; 5];
    read_exact_until(tcp, &mut record, deadline)?;
    let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
    // Not a TLS record (a client that speaks no TLS): rustls refuses the header alone.
    let valid = (20..=24).contains(&record[0]) && record[1] == 3 && 5 + len <= MAX_RECORD;
    if valid {
        record.resize(5 + len, 0);
        read_exact_until(tcp, record.get_mut(5..).unwrap_or(&mut []), deadline)?;
    }
    let mut rest = &record[..];
    while !rest.is_empty() {
        if conn.read_tls(&mut rest)? == 0 {
            break;
        }
    }
    if let Err(e) = conn.process_new_packets() {
        let _ = send_all(conn, tcp);
        return Err(refused(&e));
    }
    if !valid {
        // rustls waits for the rest of what it took for a header: refuse it here.
        let _ = send_all(conn, tcp);
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "TLS: refused the peer: it does not speak TLS",
        ));
    }
    Ok(())
}

impl TlsStream {
    /// Reads decrypted bytes, blocking within the socket's read timeout.
    pub(crate) fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            if self.conn.read_tls(&mut &self.tcp)? == 0 {
                return Ok(0);
            }
            self.conn.process_new_packets().map_err(|e| refused(&e))?;
        }
    }

    /// Appends the decrypted bytes rustls holds already (none are left inside it).
    pub(crate) fn take_buffered(&mut self, into: &mut Vec<u8>) {
        let _ = self.conn.reader().read_to_end(into);
    }

    /// The two halves, for the link.
    pub(crate) fn split(self) -> io::Result<(TlsReader, TlsWriter)> {
        let conn = Arc::new(Mutex::new(self.conn));
        let reader = TlsReader {
            tcp: self.tcp.try_clone()?,
            conn: conn.clone(),
            raw: vec![0; READ_CHUNK],
            start: 0,
            len: 0,
        };
        let writer = TlsWriter {
            tcp: self.tcp,
            conn,
            pending: Vec::new(),
            sent: 0,
            ahead: 0,
        };
        Ok((reader, writer))
    }
}

/// The reading half: reads the socket (blocking or not, as the socket is), decrypts.
pub(crate) struct TlsReader {
    tcp: TcpStream,
    conn: Arc<Mutex<Connection>>,
    /// Bytes read from the socket, `raw[start..len]` not yet given to rustls.
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Read for TlsReader {
    /// Decrypted bytes; `WouldBlock` only once the socket said so and rustls holds no
    /// more (what edge-triggered polling needs); 0 at the end of the connection.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    match conn.reader().read(out) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        r => return r,
                    }
                    if self.start >= self.len {
                        break;
                    }
                    let mut rest = self.raw.get(self.start..self.len).unwrap_or(&[]);
                    self.start += conn.read_tls(&mut rest)?;
                    conn.process_new_packets().map_err(|e| refused(&e))?;
                }
            }
            self.start = 0;
            self.len = 0;
            match (&self.tcp).read(&mut self.raw) {
                Ok(0) => return Ok(0),
                Ok(n) => self.len = n,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The writing half: encrypts, writes what the socket takes, keeps the rest.
pub(crate) struct TlsWriter {
    tcp: TcpStream,
    conn: Arc<Mutex<Connection>>,
    /// Encrypted bytes, `pending[sent..]` not yet written.
    pending: Vec<u8>,
    sent: usize,
    /// Plaintext bytes encrypted into `pending` but not yet reported written: they are
    /// reported once `pending` is out (the caller offers them again meanwhile).
    ahead: usize,
}

impl TlsWriter {
    /// Writes what is pending, with what rustls has to send (an answer the reader's side
    /// produced) after it; `WouldBlock` if the socket does not take it all.
    fn flush_pending(&mut self) -> io::Result<()> {
        {
            let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            while conn.wants_write() {
                conn.write_tls(&mut self.pending)?;
            }
        }
        while self.sent < self.pending.len() {
            match (&self.tcp).write(self.pending.get(self.sent..).unwrap_or(&[])) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.sent = 0;
        Ok(())
    }
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.flush_pending()?;
        if self.ahead > 0 {
            return Ok(std::mem::take(&mut self.ahead).min(buf.len()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = {
            let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            conn.writer()
                .write(buf.get(..WRITE_CHUNK.min(buf.len())).unwrap_or(buf))?
        };
        match self.flush_pending() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.ahead = n;
                Err(e)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for TlsReader {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.tcp.as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for TlsWriter {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.tcp.as_raw_fd()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    mod certs {
        include!("../../../peerpipe-host/tests/support/certs.rs");
    }

    use std::net::TcpListener;

    use super::*;

    /// What the driver's non-blocking writes do: offer the rest again after `WouldBlock`,
    /// until all is taken. Every byte arrives once, in order.
    #[test]
    fn a_writer_the_socket_does_not_keep_up_with_loses_nothing() {
        let ca = certs::Ca::new("unit CA");
        let id = ca.issue(&["localhost"]);
        let server = TlsServer::new(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
        let client =
            ClientTls::new(&TlsClient::new(ca.pem.as_bytes(), "localhost").unwrap()).unwrap();
        let config = server_config(&server).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = std::thread::spawn(move || {
            accept(
                listener.accept().unwrap().0,
                &config,
                Duration::from_secs(10),
            )
            .unwrap()
        });
        let near = connect(
            TcpStream::connect(addr).unwrap(),
            &client,
            Duration::from_secs(10),
        )
        .unwrap();
        let far = accepting.join().unwrap();
        let (_, mut writer) = near.split().unwrap();
        let (mut reader, _) = far.split().unwrap();
        writer.tcp.set_nonblocking(true).unwrap();

        let data: Vec<u8> = (0..16usize << 20)
            .map(|i| (i * 7 + i / 4099) as u8)
            .collect();
        let len = data.len();
        // The reader starts once the writer found the socket full.
        let (full_tx, full) = std::sync::mpsc::channel();
        let receiving = std::thread::spawn(move || {
            let _ = full.recv_timeout(Duration::from_secs(30));
            let mut got = vec![0u8; len];
            reader.read_exact(&mut got).unwrap();
            got
        });
        let (mut sent, mut blocked) = (0, 0);
        while sent < len {
            match writer.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked += 1;
                    let _ = full_tx.send(());
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            blocked > 0,
            "the socket never said WouldBlock: nothing was tested"
        );
        assert!(receiving.join().unwrap() == data, "the bytes differ");
    }
}
