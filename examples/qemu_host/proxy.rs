//! The proxy between QEMU's UART connection and the current handler.

use super::*;

/// The proxy between QEMU and the current handler, with byte counters.
#[derive(Default)]
pub(crate) struct Proxy {
    pub(crate) qemu: Mutex<Option<TcpStream>>,
    pub(crate) handler: Mutex<Option<TcpStream>>,
    pub(crate) to_fw: AtomicU64,
    pub(crate) from_fw: AtomicU64,
}

impl Proxy {
    pub(crate) fn forward(
        self: &Arc<Self>,
        mut from: TcpStream,
        to_qemu: bool,
    ) -> thread::JoinHandle<()> {
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
    pub(crate) fn accept_qemu(self: &Arc<Self>, listener: &TcpListener) -> Res<()> {
        let stream = accept_qemu(listener)?;
        *self.qemu.lock().unwrap() = Some(stream.try_clone().map_err(|e| e.to_string())?);
        self.forward(stream, false);
        Ok(())
    }

    /// A new handler, connected through the proxy, started.
    pub(crate) fn new_handler(self: &Arc<Self>) -> Res<PipeHandler> {
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
    pub(crate) fn new_raw(self: &Arc<Self>) -> Res<TcpStream> {
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
    pub(crate) fn inject(&self, bytes: &[u8]) -> Res<()> {
        let mut slot = self.qemu.lock().unwrap();
        let out = slot.as_mut().ok_or("no QEMU connection")?;
        out.write_all(bytes).map_err(|e| e.to_string())
    }

    pub(crate) fn forget_qemu(&self) {
        self.qemu.lock().unwrap().take();
    }

    pub(crate) fn bytes(&self) -> (u64, u64) {
        (
            self.to_fw.load(Ordering::Relaxed),
            self.from_fw.load(Ordering::Relaxed),
        )
    }
}
