//! GONE after silence, at the exact deadline.

use core_tests::note;
use peerpipe_core::{
    CloseReason, Config, Duration, Endpoint, Error, Event, GoneReason, Instant, Message, Outcome,
};

use crate::link::{next_deadline, timeouts, transfer, Link};
use crate::{Ep, FRAME_BUF};

pub(crate) fn gone_after_silence() {
    let config = Config::default();
    let mut now = Instant::ZERO;
    let mut a: Ep = Endpoint::new(config, 0x1111, now).unwrap();
    let mut b: Ep = Endpoint::new(config, 0x2222, now).unwrap();
    let mut link = Link::new(0); // lossless until cut
    let mut buf = [0u8; FRAME_BUF];
    let (mut a_heard, mut b_heard) = (now, now);
    let cut_at = Instant::from_millis(12_000);
    let (mut a_gone, mut b_gone) = (None, None);

    let id = a
        .send(now, Message::request("hello", b"hi").unwrap(), None)
        .unwrap();
    let (mut delivered, mut received) = (false, false);

    for _ in 0..10_000 {
        if now >= cut_at {
            link.up = false;
        }
        timeouts(now, &mut a, &mut b);
        let mut moved = transfer(now, &mut a, &mut b, &mut link, &mut buf, &mut b_heard);
        moved |= transfer(now, &mut b, &mut a, &mut link, &mut buf, &mut a_heard);
        while let Some(event) = a.poll_event() {
            moved = true;
            match event {
                Event::SendOutcome { id: done, outcome } => {
                    assert_eq!((done, outcome), (id, Outcome::Delivered));
                    delivered = true;
                }
                Event::Gone(reason) => {
                    assert_eq!(reason, GoneReason::Silence);
                    assert!(a_gone.is_none(), "a: GONE twice");
                    a_gone = Some(now);
                }
                other => panic!("a: unexpected {:?}", other),
            }
        }
        while let Some(event) = b.poll_event() {
            moved = true;
            match event {
                Event::Message(m) => {
                    assert_eq!(m.data(), b"hi");
                    received = true;
                }
                Event::Gone(reason) => {
                    assert_eq!(reason, GoneReason::Silence);
                    assert!(b_gone.is_none(), "b: GONE twice");
                    b_gone = Some(now);
                }
                other => panic!("b: unexpected {:?}", other),
            }
        }
        if let (Some(a_at), Some(b_at)) = (a_gone, b_gone) {
            assert!(delivered && received);
            let silence = Duration::from_secs(30);
            assert!(a_heard < cut_at && b_heard < cut_at);
            assert!(
                a_heard > Instant::ZERO,
                "heartbeats kept the link alive before the cut"
            );
            assert_eq!(
                a_at,
                a_heard + silence,
                "a: GONE 30 s after the last frame it heard"
            );
            assert_eq!(
                b_at,
                b_heard + silence,
                "b: GONE 30 s after the last frame it heard"
            );
            // A gone peer refuses new sends.
            let refused = a.send(now, Message::request("late", b"").unwrap(), None);
            assert_eq!(refused, Err(Error::Closed(CloseReason::PeerGone)));
            note(format_args!(
                "a heard last at {} ms, GONE at {} ms",
                a_heard.as_millis(),
                a_at.as_millis()
            ));
            return;
        }
        if !moved {
            now = next_deadline(now, &a, &b);
        }
    }
    panic!(
        "no GONE by {} ms (a {:?}, b {:?})",
        now.as_millis(),
        a_gone,
        b_gone
    );
}
