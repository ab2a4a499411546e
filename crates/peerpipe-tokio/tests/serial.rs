//! A serial port as the transport (feature `serial`): two async handlers, each on the slave
//! side of its own pseudo-terminal, the two masters bridged by copying threads, as over a
//! null-modem cable.
#![cfg(all(feature = "serial", unix))]

use std::fs::File;
use std::io;
use std::time::Duration;

use peerpipe_tokio::{open_serial, Config, Item, Message, PipeHandler, Status};

#[path = "../../peerpipe-std/tests/common/pty.rs"]
mod pty;

use pty::open_pty;

fn bridge(mut from: File, mut to: File) {
    std::thread::spawn(move || io::copy(&mut from, &mut to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_end_over_serial_ports() {
    let (p1, p2) = (open_pty(), open_pty());
    bridge(
        p1.master.try_clone().unwrap(),
        p2.master.try_clone().unwrap(),
    );
    bridge(
        p2.master.try_clone().unwrap(),
        p1.master.try_clone().unwrap(),
    );
    let config = Config {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_secs(10),
        resend_interval: Some(Duration::from_millis(500)),
        max_resends: None,
        default_request_timeout: Duration::from_secs(20),
        max_message: 0,
    };
    let a: PipeHandler =
        PipeHandler::start(open_serial(&p1.path, 115_200).unwrap(), config).unwrap();
    let b: PipeHandler =
        PipeHandler::start(open_serial(&p2.path, 115_200).unwrap(), config).unwrap();
    let server = tokio::spawn(async move {
        while let Some(item) = b.recv().await {
            match item {
                Item::Message(req) => {
                    let reply = req.reply_to(req.data().to_vec()).unwrap();
                    b.send_to_peer(reply, None).await.unwrap();
                }
                Item::Status(s) => return s,
            }
        }
        panic!("stream ended without a status");
    });
    for size in [0usize, 1, 64, 1000, 8192, 100_000] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let reply = a
            .request(Message::request("serial", data.clone()).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(reply.data(), data);
    }
    a.notify_end(b"bye".to_vec(), None).await.unwrap();
    assert_eq!(server.await.unwrap(), Status::End(b"bye".to_vec()));
}
