//! When a handler does not reconnect: reconnection off, after its END, and after
//! `give_up_after` without a connection.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnection_a_cut_is_gone_at_once() {
    let (a, b) = pair(Reconnect::OFF, Reconnect::OFF).await;
    let seen = serve(&a, None);
    serve(&b, None);
    echo(&a, 1).await;
    b.stop();
    let gone = |s: &Status| {
        matches!(
            s,
            Status::Gone {
                reason: GoneReason::TransportLost,
                ..
            }
        )
    };
    assert!(wait_until(Duration::from_secs(2), || count(&seen, gone) == 1).await);
    assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());
    a.stop();
}

/// After this side's END went through there is nothing left to say: a break is GONE at
/// once and nothing dials again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_end_went_through_a_handler_does_not_reconnect() {
    let (a, b) = pair(Reconnect::ON, Reconnect::ON).await;
    serve(&b, None);
    echo(&a, 1).await;
    a.notify_end(Vec::new(), None).await.unwrap();
    b.stop();
    match tokio::time::timeout(STEP, a.recv()).await.unwrap() {
        Some(Item::Status(Status::Gone { .. })) => {}
        s => panic!("expected GONE after the END, got {s:?}"),
    }
    assert_eq!(a.stats().reconnects, 0);
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_is_gone_when_no_connection_comes_back_within_give_up_after() {
    let policy = Reconnect {
        give_up_after: Some(Duration::from_millis(500)),
        ..Reconnect::default()
    };
    let (a, b) = pair(policy, Reconnect::ON).await;
    serve(&b, None);
    echo(&a, 1).await;
    let started = Instant::now();
    b.stop();
    assert!(matches!(
        tokio::time::timeout(STEP, a.recv()).await.unwrap(),
        Some(Item::Status(Status::Reconnecting { .. }))
    ));
    match tokio::time::timeout(STEP, a.recv()).await.unwrap() {
        Some(Item::Status(Status::Gone {
            reason: GoneReason::TransportLost,
            cause: Some(_),
        })) => {}
        s => panic!("expected GONE after give_up_after, got {s:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    a.stop();
}
