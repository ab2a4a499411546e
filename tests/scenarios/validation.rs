//! Validation errors: every config, message and send error, and a buffer too small for a frame.

use peerpipe_core::wire::{Body, Decoder};
use peerpipe_core::{
    CloseReason, Config, ConfigError, Duration, Error, Event, Instant, Message, MsgId, Outcome,
    RESERVED_TOPICS,
};
use peerpipe_sim::SimEndpoint;

use crate::support::*;

#[test]
fn every_config_error() {
    let ok = Config::default();
    let cases = [
        (
            Config {
                heartbeat_interval: Duration::ZERO.into(),
                ..ok
            },
            ConfigError::ZeroHeartbeatInterval,
        ),
        (
            Config {
                heartbeat_timeout: ok.heartbeat_interval,
                ..ok
            },
            ConfigError::HeartbeatTimeoutNotAboveInterval,
        ),
        (
            Config {
                heartbeat_timeout: US.into(),
                ..ok
            },
            ConfigError::HeartbeatTimeoutNotAboveInterval,
        ),
        (
            Config {
                resend_interval: Some(Duration::ZERO.into()),
                ..ok
            },
            ConfigError::ZeroResendInterval,
        ),
        (
            Config {
                default_request_timeout: Duration::ZERO.into(),
                ..ok
            },
            ConfigError::ZeroRequestTimeout,
        ),
    ];
    for (config, err) in cases {
        assert_eq!(SimEndpoint::new(config, 1, Instant::ZERO).unwrap_err(), err);
    }
    let edge = Config {
        heartbeat_timeout: ok.heartbeat_interval + US.into(),
        resend_interval: None,
        max_resends: None,
        ..ok
    };
    assert!(SimEndpoint::new(edge, 1, Instant::ZERO).is_ok());
    let off = Config {
        heartbeat_timeout: Duration::ZERO.into(),
        ..ok
    };
    assert!(SimEndpoint::new(off, 1, Instant::ZERO).is_ok());
}

#[test]
fn every_message_error() {
    for topic in ["", "a b", "a-b", "é", "x.y", "tab\t"] {
        assert_eq!(
            Message::<128, 32>::request(topic, b"").unwrap_err(),
            Error::InvalidTopic,
            "{topic:?}"
        );
        assert_eq!(
            Message::<128, 32>::reply(topic, b"", MsgId(0)).unwrap_err(),
            Error::InvalidTopic
        );
    }
    for topic in RESERVED_TOPICS {
        assert_eq!(
            Message::<128, 32>::request(topic, b"").unwrap_err(),
            Error::ReservedTopic
        );
    }
    let long = "t".repeat(33);
    assert_eq!(
        Message::<128, 32>::request(&long, b"").unwrap_err(),
        Error::TopicTooLong { len: 33, max: 32 }
    );
    assert!(Message::<128, 32>::request(&long[..32], b"").is_ok());
    assert_eq!(
        Message::<128, 32>::request("t", &[0; 129]).unwrap_err(),
        Error::PayloadTooLarge { len: 129, max: 128 }
    );
    assert!(Message::<128, 32>::request("t", &[0; 128]).is_ok());
    let ok = Message::<128, 32>::request("t", b"").unwrap();
    assert_eq!(
        ok.reply_to(&[1; 129]).unwrap_err(),
        Error::PayloadTooLarge { len: 129, max: 128 }
    );

    // END and ABORT data too large: refused, and the conversation stays open.
    let mut a = endpoint(fast(), 1, Instant::ZERO);
    assert_eq!(
        a.notify_end(Instant::ZERO, &[0; 129]),
        Err(Error::PayloadTooLarge { len: 129, max: 128 })
    );
    assert_eq!(
        a.notify_abort(Instant::ZERO, &[0; 129]),
        Err(Error::PayloadTooLarge { len: 129, max: 128 })
    );
    assert_eq!(a.send(Instant::ZERO, ok, None), Ok(MsgId(0)));
}

#[test]
fn every_send_error() {
    let mut p = pair(fast());
    p.auto_poll.0 = false;
    let now = p.now();
    assert_eq!(
        p.a.send(now, req(0), Some(Duration::ZERO)),
        Err(Error::ZeroTimeout)
    );
    // TX = 8 slots; a refused send takes no id.
    for i in 0..8 {
        assert_eq!(p.a.send(now, req(i), None), Ok(MsgId(i)));
    }
    assert_eq!(p.a.send(now, req(8), None), Err(Error::SendQueueFull));
    assert_eq!(p.a.notify_end(now, b""), Err(Error::SendQueueFull));
    assert_eq!(p.a.pending_sends(), 8);
    // Delivered, but a slot is freed only when its outcome is taken.
    p.run_for(ms(10));
    assert_eq!(p.a.pending_sends(), 0);
    assert_eq!(p.a.send(p.now(), req(8), None), Err(Error::SendQueueFull));
    assert_eq!(
        p.a.poll_event(),
        Some(Event::SendOutcome {
            id: MsgId(0),
            outcome: Outcome::Delivered
        })
    );
    // The failed notify_end did not close the conversation.
    assert_eq!(p.a.send(p.now(), req(8), None), Ok(MsgId(8)));
    assert_eq!(p.a.send(p.now(), req(9), None), Err(Error::SendQueueFull));

    // Closed(LocalEnd) / Closed(LocalAbort) / Stopped.
    let mut e = endpoint(fast(), 1, Instant::ZERO);
    e.notify_end(Instant::ZERO, b"").unwrap();
    assert_eq!(
        e.send(Instant::ZERO, req(0), None),
        Err(Error::Closed(CloseReason::LocalEnd))
    );
    let mut e = endpoint(fast(), 1, Instant::ZERO);
    e.notify_abort(Instant::ZERO, b"").unwrap();
    assert_eq!(
        e.send(Instant::ZERO, req(0), None),
        Err(Error::Closed(CloseReason::LocalAbort))
    );
    e.stop();
    assert_eq!(e.send(Instant::ZERO, req(0), None), Err(Error::Stopped));
    // Closed(PeerEnded), Closed(PeerAborted) and Closed(PeerGone) are checked in the END,
    // ABORT and GONE scenarios.
}

/// A buffer too small for the frame gives `BufferTooSmall` and the frame stays queued.
#[test]
fn buffer_too_small_keeps_the_frame() {
    let mut a = endpoint(fast(), 1, Instant::ZERO);
    knows_peer(&mut a, 2, Instant::ZERO);
    let id = a.send(Instant::ZERO, req(56), None).unwrap();
    let mut big = [0u8; SimEndpoint::MAX_FRAME_LEN];
    for size in [0, 1, 4, 16, 60] {
        let mut small = vec![0u8; size];
        assert_eq!(
            a.poll_transmit(Instant::ZERO, &mut small),
            Err(Error::BufferTooSmall),
            "{size}"
        );
    }
    assert_eq!(a.stats().frames_sent, 0);
    // The DATA frame (then the start heartbeat) still comes out whole.
    let n = a.poll_transmit(Instant::ZERO, &mut big).unwrap().unwrap();
    let mut d = Decoder::<{ SimEndpoint::MAX_FRAME_LEN }>::new();
    let (used, frame) = d.feed(&big[..n]);
    assert_eq!(used, n);
    match frame.unwrap().unwrap().body {
        Body::Data(data) => {
            assert_eq!(data.id, id.0);
            assert_eq!(check_payload(data.payload, REQ_SALT), 56);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.stats().data_sent, 1);
    let n = a.poll_transmit(Instant::ZERO, &mut big).unwrap().unwrap();
    assert!(n < 24);
    assert_eq!(a.stats().heartbeats_sent, 1);
    assert_eq!(a.poll_transmit(Instant::ZERO, &mut big), Ok(None));
}
