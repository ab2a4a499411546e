use peerpipe_core::{Config, Duration, Event, Instant, Message, Outcome};
use peerpipe_sim::{LinkConfig, Pair, SimEndpoint};

#[test]
fn smoke_lossy() {
    let cfg = Config {
        default_request_timeout: Duration::from_secs(60),
        max_resends: None,
        resend_interval: Some(Duration::from_millis(100)),
        ..Config::default()
    };
    let a = SimEndpoint::new(cfg, 1, Instant::ZERO).unwrap();
    let b = SimEndpoint::new(cfg, 2, Instant::ZERO).unwrap();
    let mut p: Pair = Pair::new(a, b, LinkConfig::lossy(0.2, 0.05, 0.01), 7);
    let total = 20_000u64;
    let mut sent = 0u64;
    let mut delivered = 0u64;
    let mut failed = 0u64;
    let mut got: Vec<u64> = Vec::new();
    while (delivered + failed) < total {
        while sent < total {
            let now = p.now();
            let m = Message::request("t", &sent.to_le_bytes()).unwrap();
            match p.a.send(now, m, None) {
                Ok(_) => sent += 1,
                Err(_) => break,
            }
        }
        assert!(p.advance());
        for e in p.take_events(peerpipe_sim::Side::A) {
            match e {
                Event::SendOutcome {
                    outcome: Outcome::Delivered,
                    ..
                } => delivered += 1,
                Event::SendOutcome { .. } => failed += 1,
                e => panic!("{e:?}"),
            }
        }
        for e in p.take_events(peerpipe_sim::Side::B) {
            match e {
                Event::Message(m) => got.push(u64::from_le_bytes(m.payload().try_into().unwrap())),
                e => panic!("{e:?}"),
            }
        }
    }
    println!(
        "delivered {delivered} failed {failed} got {} now {:?} a {:?} b {:?} ab {:?}",
        got.len(),
        p.now(),
        p.a.stats(),
        p.b.stats(),
        p.ab.stats()
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(failed, 0);
    assert_eq!(got.len() as u64, delivered);
}
