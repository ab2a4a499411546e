//! A peer that is a bare core endpoint with the handler's default capacities, driven over a
//! `tokio::io::duplex` end by the test itself: it can announce itself and then freeze, come
//! back to life as the same incarnation, or send messages whose bytes it computes as they go
//! out. Included with `#[path]`.

use std::time::Duration;

use peerpipe_tokio::peerpipe_core::{Endpoint, Instant as CoreInstant, Source};
use peerpipe_tokio::{Config, DEFAULT_FRAGMENT, DEFAULT_FRAME, DEFAULT_SLOTS, DEFAULT_TOPIC};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::{sleep_until, Instant};

/// The core endpoint of a default handler.
pub type CoreEndpoint =
    Endpoint<DEFAULT_FRAGMENT, DEFAULT_TOPIC, DEFAULT_SLOTS, DEFAULT_SLOTS, DEFAULT_FRAME, 0>;

pub struct CorePeer {
    pub ep: Box<CoreEndpoint>,
    io: DuplexStream,
    origin: Instant,
    frame: Vec<u8>,
    input: Vec<u8>,
}

impl CorePeer {
    pub fn new(io: DuplexStream, config: Config, session: u32) -> Self {
        CorePeer {
            ep: Box::new(CoreEndpoint::new(config, session, CoreInstant::ZERO).unwrap()),
            io,
            origin: Instant::now(),
            frame: vec![0u8; DEFAULT_FRAME],
            input: vec![0u8; 8 * 1024],
        }
    }

    /// The endpoint's clock: tokio's, from the start.
    pub fn now(&self) -> CoreInstant {
        CoreInstant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    /// Writes every frame that is due (at first: the heartbeat that announces it).
    pub async fn transmit<S: Source>(&mut self, source: &mut S) {
        let now = self.now();
        while let Some(n) = self
            .ep
            .poll_transmit_from(now, &mut self.frame, source)
            .unwrap()
        {
            self.io.write_all(&self.frame[..n]).await.unwrap();
        }
    }

    /// Drives the endpoint (input, timers, output from `source`) until `step`, called with
    /// the endpoint and the time at every turn (it sends, and polls the events), returns
    /// true; then transmits what is due once more (the last acknowledgements).
    pub async fn run<S: Source>(
        &mut self,
        source: &mut S,
        mut step: impl FnMut(&mut CoreEndpoint, CoreInstant) -> bool,
    ) {
        loop {
            let now = self.now();
            let done = step(&mut self.ep, now);
            self.transmit(source).await;
            if done {
                return;
            }
            let wake = self
                .ep
                .poll_timeout()
                .map_or(self.origin + Duration::from_secs(24 * 3600), |t| {
                    self.origin + Duration::from_micros(t.as_micros())
                });
            tokio::select! {
                r = self.io.read(&mut self.input) => {
                    let n = r.unwrap();
                    assert!(n > 0, "the handler closed the connection");
                    let now = self.now();
                    self.ep.handle_bytes(now, &self.input[..n]);
                }
                () = sleep_until(wake) => {}
            }
            let now = self.now();
            if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                self.ep.handle_timeout(now);
            }
        }
    }

    /// The connection, to read from it by hand.
    #[allow(dead_code)]
    pub fn io(&mut self) -> &mut DuplexStream {
        &mut self.io
    }
}
