//! A serial port as a transport.

use tokio_serial::{SerialPortBuilderExt, SerialStream};

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
