//! Callbacks run on the handler's I/O thread and may call any method of their own handler:
//! nothing deadlocks, and the calls that would have to wait for that thread say so.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config, start_pair, STEP};
use crossbeam_channel::Sender;
use peerpipe_std::{memory_pair, Error, Item, Message, Status};

/// Runs `f` on a thread; fails the test if it does not finish within [`STEP`] (a deadlock).
fn within_step<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(STEP)
        .expect("deadlock: a callback calling its own handler did not return")
}

fn request(topic: &str) -> Message {
    Message::request(topic, b"x".to_vec()).unwrap()
}

#[test]
fn a_message_callback_may_call_every_method_of_its_handler() {
    let (a, b) = memory_pair();
    let (client, server) = start_pair(a, b, config());
    let (seen_tx, seen) = crossbeam_channel::unbounded::<String>();
    let results: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    server.set_message_cb({
        let server = server.clone();
        let results = results.clone();
        move |m| {
            let note = |what: &str, r: String| results.lock().unwrap().push((what.into(), r));
            match m.topic() {
                "replace" => {
                    // Replace this very callback from inside it.
                    let seen_tx: Sender<String> = seen_tx.clone();
                    server.set_message_cb(move |m| {
                        let _ = seen_tx.send(format!("new:{}", m.topic()));
                    });
                }
                "status" => server.set_status_cb(|_| {}),
                "blocking" => {
                    let r = server.send_to_peer(request("x"), Some(STEP), None);
                    note("send_to_peer", format!("{r:?}"));
                    let r = server.request(request("x"), Some(STEP), None);
                    note("request", format!("{r:?}"));
                    let r = server.send_no_wait(m.reply_to(b"ok".to_vec()).unwrap());
                    note("send_no_wait", format!("{r:?}"));
                    note("stats", format!("{}", server.stats().waiting_sends));
                }
                _ => {}
            }
        }
    });
    within_step(move || {
        client
            .send_to_peer(request("status"), Some(STEP), None)
            .unwrap();
        let reply = client
            .request(request("blocking"), Some(STEP), None)
            .unwrap();
        assert_eq!(reply.data(), b"ok");
        client
            .send_to_peer(request("replace"), Some(STEP), None)
            .unwrap();
        client
            .send_to_peer(request("after"), Some(STEP), None)
            .unwrap();
        assert_eq!(seen.recv_timeout(STEP).unwrap(), "new:after");
        client.stop(true);
    });
    let results = results.lock().unwrap().clone();
    assert_eq!(
        results,
        vec![
            ("send_to_peer".into(), "Err(InCallback)".into()),
            ("request".into(), "Err(InCallback)".into()),
            ("send_no_wait".into(), "Ok(())".into()),
            ("stats".into(), "0".into()),
        ]
    );
    server.stop(true);
}

#[test]
fn a_message_callback_may_end_the_conversation_and_stop_its_handler() {
    let (a, b) = memory_pair();
    let (client, server) = start_pair(a, b, config());
    server.set_message_cb({
        let server = server.clone();
        move |m| {
            if m.topic() == "finish" {
                // END from the callback is queued, not waited for; then stop.
                server
                    .notify_end(b"bye".to_vec())
                    .expect("END from a callback");
                server.stop(true);
            }
        }
    });
    let got = within_step(move || {
        client
            .send_to_peer(request("finish"), Some(STEP), None)
            .unwrap();
        let got = client.recv_timeout(STEP);
        client.stop(true);
        got
    });
    assert!(
        matches!(&got, Some(Item::Status(Status::End(d))) if d == b"bye"),
        "{got:?}"
    );
    assert!(matches!(
        server.send_no_wait(request("late")),
        Err(Error::Stopped)
    ));
}

#[test]
fn a_status_callback_may_stop_its_handler_and_hears_why_end_is_refused() {
    let (a, b) = memory_pair();
    let (client, server) = start_pair(a, b, config());
    let (tx, rx) = crossbeam_channel::bounded(1);
    server.set_status_cb({
        let server = server.clone();
        move |status| {
            if let Status::End(_) = status {
                let _ = tx.send(format!("{:?}", server.notify_end(Vec::new())));
                server.stop(true);
            }
        }
    });
    within_step(move || {
        client.notify_end(b"bye".to_vec()).unwrap();
        client.stop(true);
    });
    assert_eq!(rx.recv_timeout(STEP).unwrap(), "Err(Closed(PeerEnded))");
}

#[test]
fn request_refuses_a_reply_by_name() {
    let (a, b) = memory_pair();
    let (client, server) = start_pair(a, b, config());
    let reply = Message::reply("x", Vec::new(), peerpipe_std::MsgId(1)).unwrap();
    let r = client.request(reply, Some(Duration::from_secs(1)), None);
    assert!(
        matches!(
            r,
            Err(Error::Invalid(
                peerpipe_std::peerpipe_core::Error::NotARequest
            ))
        ),
        "{r:?}"
    );
    client.stop(true);
    server.stop(true);
}
