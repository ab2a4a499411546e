//! The ports the drivers run over: an in-memory byte pipe, a dead port, a port that fails
//! once.

use super::*;

/// One direction of an in-memory byte pipe with room for `cap` bytes.
#[derive(Default)]
pub(super) struct Lane {
    bytes: VecDeque<u8>,
    cap: usize,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The transmitting end was dropped: reads return 0 once the bytes are taken.
    closed: bool,
}

impl Drop for PipeTx {
    fn drop(&mut self) {
        let mut lane = self.0.borrow_mut();
        lane.closed = true;
        if let Some(w) = lane.reader.take() {
            w.wake();
        }
    }
}

pub(super) struct PipeRx(Rc<RefCell<Lane>>);
pub(super) struct PipeTx(Rc<RefCell<Lane>>);

pub(super) fn pipe(cap: usize) -> (PipeTx, PipeRx) {
    let lane = Rc::new(RefCell::new(Lane {
        cap,
        ..Lane::default()
    }));
    (PipeTx(lane.clone()), PipeRx(lane))
}

impl embedded_io_async::ErrorType for PipeRx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::ErrorType for PipeTx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for PipeRx {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        poll_fn(|cx| {
            let mut lane = self.0.borrow_mut();
            if lane.bytes.is_empty() {
                if lane.closed {
                    return Poll::Ready(Ok(0));
                }
                lane.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(lane.bytes.len());
            for (dst, src) in buf.iter_mut().zip(lane.bytes.drain(..n)) {
                *dst = src;
            }
            if let Some(w) = lane.writer.take() {
                w.wake();
            }
            Poll::Ready(Ok(n))
        })
        .await
    }
}

impl embedded_io_async::Write for PipeTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        poll_fn(|cx| {
            let mut lane = self.0.borrow_mut();
            let room = lane.cap - lane.bytes.len();
            if room == 0 {
                lane.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(room);
            lane.bytes.extend(&buf[..n]);
            if let Some(w) = lane.reader.take() {
                w.wake();
            }
            Poll::Ready(Ok(n))
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A port whose transmitter takes nothing, ever, and whose receiver never receives.
pub(super) struct Dead;

impl embedded_io_async::ErrorType for Dead {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Dead {
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
        core::future::pending().await
    }
}

impl embedded_io_async::Write for Dead {
    async fn write(&mut self, _: &[u8]) -> Result<usize, Self::Error> {
        core::future::pending().await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        core::future::pending().await
    }
}

/// A port half that fails its first call, then is `inner`.
pub(super) struct FailsOnce<P> {
    inner: P,
    failed: bool,
}

#[derive(Debug)]
pub(super) struct PortError;

impl core::fmt::Display for PortError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("port error")
    }
}

impl core::error::Error for PortError {}

impl embedded_io_async::Error for PortError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        embedded_io_async::ErrorKind::Other
    }
}

impl<P> embedded_io_async::ErrorType for FailsOnce<P> {
    type Error = PortError;
}

impl<P> FailsOnce<P> {
    pub(super) fn new(inner: P) -> Self {
        FailsOnce {
            inner,
            failed: false,
        }
    }

    fn fail(&mut self) -> Result<(), PortError> {
        if self.failed {
            Ok(())
        } else {
            self.failed = true;
            Err(PortError)
        }
    }
}

impl<P: embedded_io_async::Read> embedded_io_async::Read for FailsOnce<P> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, PortError> {
        self.fail()?;
        Ok(self.inner.read(buf).await.unwrap_or(0))
    }
}

impl<P: embedded_io_async::Write> embedded_io_async::Write for FailsOnce<P> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, PortError> {
        self.fail()?;
        Ok(self.inner.write(buf).await.unwrap_or(0))
    }

    async fn flush(&mut self) -> Result<(), PortError> {
        Ok(())
    }
}
