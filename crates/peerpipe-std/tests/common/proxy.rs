//! A fault-injecting proxy for the reconnection tests of `peerpipe-std` and
//! `peerpipe-tokio` (included by path): it accepts, connects upstream, forwards both ways
//! on threads of its own, and cuts every connection at a period or stalls them all.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A connection the proxy forwards and may cut.
pub trait Conn: Read + Write + Send + 'static {
    fn clone_conn(&self) -> io::Result<Box<dyn Conn>>;
    fn cut(&self);
}

impl Conn for TcpStream {
    fn clone_conn(&self) -> io::Result<Box<dyn Conn>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn cut(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

#[cfg(unix)]
impl Conn for UnixStream {
    fn clone_conn(&self) -> io::Result<Box<dyn Conn>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn cut(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// Faults the proxy injects.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Cuts every connection (both sides) this often.
    Cut(Duration),
    /// Stops forwarding for the first duration, every second duration.
    Stall(Duration, Duration),
}

/// A proxy thread: accepts, connects upstream, forwards both ways, injects `fault`.
pub struct Proxy {
    /// Cuts made (of at least one live connection).
    pub cuts: Arc<AtomicU64>,
    /// Stalls made.
    pub stalls: Arc<AtomicU64>,
    /// Connections forwarded.
    pub connections: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    /// Held while a fault is made, so that [`Proxy::calm`] returns after the last one.
    faulting: Arc<Mutex<()>>,
    stalled: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(
        mut accept: impl FnMut() -> io::Result<Box<dyn Conn>> + Send + 'static,
        connect: impl Fn() -> io::Result<Box<dyn Conn>> + Send + 'static,
        fault: Fault,
    ) -> Proxy {
        let live: Arc<Mutex<Vec<Box<dyn Conn>>>> = Arc::default();
        let stalled = Arc::new(AtomicBool::new(false));
        let p = Proxy {
            cuts: Arc::default(),
            stalls: Arc::default(),
            connections: Arc::default(),
            done: Arc::default(),
            faulting: Arc::default(),
            stalled: stalled.clone(),
        };
        {
            let (live, stalled, connections) =
                (live.clone(), stalled.clone(), p.connections.clone());
            std::thread::spawn(move || loop {
                let Ok(down) = accept() else { return };
                let Ok(up) = connect() else { continue };
                connections.fetch_add(1, Ordering::Relaxed);
                {
                    let mut l = live.lock().unwrap();
                    l.push(down.clone_conn().unwrap());
                    l.push(up.clone_conn().unwrap());
                }
                let (down2, up2) = (down.clone_conn().unwrap(), up.clone_conn().unwrap());
                pump(down, up, stalled.clone());
                pump(up2, down2, stalled.clone());
            });
        }
        let (cuts, stalls, done) = (p.cuts.clone(), p.stalls.clone(), p.done.clone());
        let faulting = p.faulting.clone();
        std::thread::spawn(move || loop {
            match fault {
                Fault::Cut(every) => {
                    std::thread::sleep(every);
                    let _faulting = faulting.lock().unwrap();
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    let conns = std::mem::take(&mut *live.lock().unwrap());
                    if !conns.is_empty() {
                        cuts.fetch_add(1, Ordering::Relaxed);
                    }
                    conns.iter().for_each(|c| c.cut());
                }
                Fault::Stall(len, every) => {
                    std::thread::sleep(every);
                    {
                        let _faulting = faulting.lock().unwrap();
                        if done.load(Ordering::SeqCst) {
                            return;
                        }
                        stalled.store(true, Ordering::SeqCst);
                        stalls.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(len);
                    stalled.store(false, Ordering::SeqCst);
                }
            }
        });
        p
    }

    /// Stops making faults: no cut or stall starts after this returns, and a stall under
    /// way ends now.
    pub fn calm(&self) {
        let _faulting = self.faulting.lock().unwrap();
        self.done.store(true, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.calm();
    }
}

/// Forwards `from` to `to` until either breaks; then cuts both.
fn pump(mut from: Box<dyn Conn>, mut to: Box<dyn Conn>, stalled: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while stalled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        from.cut();
        to.cut();
    });
}

/// A TCP proxy in front of `server` (with `TCP_NODELAY`, as the handlers' own sockets):
/// the proxy and its address.
pub fn tcp_proxy(server: SocketAddr, fault: Fault) -> (Proxy, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = Proxy::start(
        move || {
            let s = listener.accept()?.0;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as Box<dyn Conn>)
        },
        move || {
            let s = TcpStream::connect(server)?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as Box<dyn Conn>)
        },
        fault,
    );
    (proxy, addr)
}
