//! A serial port as a transport, opened again when it fails if asked.

use std::io;

use peerpipe_core::Config;
use peerpipe_host::Reconnect;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use crate::PipeHandler;

/// Opens the serial port at `path` (e.g. `/dev/ttyUSB0`) at `baud`, 8N1, no flow control,
/// as a transport for [`PipeHandler::start`](crate::PipeHandler::start). Must be called
/// inside a tokio runtime.
pub fn open_serial(path: &str, baud: u32) -> tokio_serial::Result<SerialStream> {
    tokio_serial::new(path, baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    PipeHandler<P, T, RX, TX, F>
{
    /// Opens the serial port at `path` at `baud` (as [`open_serial`]) and starts a handler on
    /// it that opens the same path again when the port fails (its device disappears: a USB
    /// adapter unplugged), as `reconnect` says: at once, then with backoff and jitter, until
    /// the device is back; the conversation goes on in the same session
    /// ([`Status::Reconnecting`](crate::Status::Reconnecting), then
    /// [`Status::Reconnected`](crate::Status::Reconnected)); GONE only when nothing came from
    /// the peer for `heartbeat_timeout`, or after `give_up_after`. [`Reconnect::OFF`]: a
    /// failed port is GONE at once. The first open is not retried. Feature `serial`.
    ///
    /// # Errors
    /// The port's error; `InvalidInput` for an invalid `config`.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn start_serial(
        path: &str,
        baud: u32,
        config: Config,
        reconnect: Reconnect,
    ) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let port = open_serial(path, baud)?;
        if !reconnect.enabled {
            return PipeHandler::start(port, config)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
        }
        let path = path.to_owned();
        let open = move || {
            let path = path.clone();
            async move { open_serial(&path, baud).map_err(io::Error::from) }
        };
        PipeHandler::reopening(port, config, reconnect, open)
    }
}
