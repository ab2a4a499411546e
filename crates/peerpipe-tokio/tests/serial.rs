//! A serial port as the transport (feature `serial`): two async handlers, each on the slave
//! side of its own pseudo-terminal, the two masters bridged by copying threads, as over a
//! null-modem cable.
#![cfg(all(feature = "serial", unix))]

use std::fs::File;
use std::io;
use std::time::Duration;

use peerpipe_tokio::{open_serial, Config, Item, Message, PipeHandler, Reconnect, Status};

#[path = "../../peerpipe-std/tests/common/pty.rs"]
mod pty;

use pty::{open_pty, relink, Cable};

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

/// A serial port whose device disappears (its pseudo-terminal closed) and comes back under
/// the same path (a symlink to a new pseudo-terminal) while requests flow: the handler opens
/// the path again and the conversation goes on, every request answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_port_that_disappears_and_comes_back_is_opened_again() {
    let dir = std::env::temp_dir().join(format!("peerpipe-tokio-serial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("ttyA");
    let (p1, p2) = (open_pty(), open_pty());
    relink(&p1.path, &link);
    let cable = Cable::new(&p1, &p2);
    let config = Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_secs(10),
        resend_interval: Some(Duration::from_millis(300)),
        max_resends: None,
        default_request_timeout: Duration::from_secs(10),
        max_message: 0,
    };
    let a: PipeHandler =
        PipeHandler::start_serial(link.to_str().unwrap(), 115_200, config, Reconnect::ON).unwrap();
    let b: PipeHandler =
        PipeHandler::start_serial(&p2.path, 115_200, config, Reconnect::ON).unwrap();
    let (b_status_tx, mut b_status) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn({
        let b = b.clone();
        async move {
            while let Some(item) = b.recv().await {
                match item {
                    Item::Message(req) => {
                        let reply = req.reply_to(req.data().to_vec()).unwrap();
                        let b = b.clone();
                        tokio::spawn(async move { b.send_to_peer(reply, None).await });
                    }
                    Item::Status(s) => {
                        let _ = b_status_tx.send(s);
                    }
                }
            }
        }
    });
    let asking = tokio::spawn({
        let a = a.clone();
        async move {
            let mut i = 0u32;
            // Requests flow until told to stop (a status the test pushes is not needed:
            // the count is checked once they are done).
            while i < 100_000 {
                let data = i.to_le_bytes().to_vec();
                let reply = a
                    .request(Message::request("echo", data.clone()).unwrap(), None)
                    .await
                    .unwrap_or_else(|e| panic!("request {i}: {e}"));
                assert_eq!(reply.data(), &data[..], "request {i}");
                i += 1;
                if a.stats().reconnects == 1 && i % 20 == 0 {
                    return i;
                }
            }
            i
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Unplugged: the cable and the first pseudo-terminal are gone.
    tokio::task::spawn_blocking(move || {
        cable.unplug();
        drop(p1);
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Plugged in again: a new device under the same path.
    let p1 = open_pty();
    let cable = Cable::new(&p1, &p2);
    relink(&p1.path, &link);
    let asked = tokio::time::timeout(Duration::from_secs(20), asking)
        .await
        .unwrap()
        .unwrap();
    assert!(asked > 20, "{asked} requests");
    assert_eq!(a.stats().reconnects, 1);
    let mut seen = Vec::new();
    while let Some(Item::Status(s)) = a.get_next() {
        seen.push(s);
    }
    assert!(
        matches!(
            &seen[..],
            [Status::Reconnecting { .. }, Status::Reconnected]
        ),
        "{seen:?}"
    );
    assert!(
        b_status.try_recv().is_err(),
        "b saw nothing but lost frames"
    );
    a.stop();
    b.stop();
    tokio::task::spawn_blocking(move || {
        cable.unplug();
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
