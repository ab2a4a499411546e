//! The hand-offs between threads that an acknowledged send makes, without peerpipe: the
//! baseline of `rtt`'s throughput phase.
//!
//! With `peerpipe-std`, a thread blocked in `send_to_peer` gives its message to the link and
//! waits; the receiving handler's I/O thread takes it; the sending handler's I/O thread takes
//! the acknowledgement and wakes the sender. [`acked_throughput`] makes the same three hand-offs
//! with nothing else: `threads` threads each send a payload (a fresh `Vec`, as a message is)
//! through a crossbeam channel to a "receiver" thread, which passes the sender's number to an
//! "acknowledger" thread, which wakes the sender through its own channel. A waiting sender
//! polls for up to 100 µs, yielding its CPU between polls, then blocks: what peerpipe's
//! waiters do. No driver that makes these hand-offs per message goes faster: see `rtt`'s
//! `raw_msgs_per_s`. [`pipelined_throughput`] makes the same hand-offs for one sender that
//! keeps up to `window` payloads unacknowledged (`PipeHandler::send_pipelined`): the
//! baseline of `rtt`'s `pipelined_msgs_per_s`.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

/// How long a waiting sender polls before it blocks (peerpipe-std's waiters: 100 µs).
const POLL_FOR: Duration = Duration::from_micros(100);
/// Bound on every blocking wait.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for one wake-up on `rx`: polling first, then blocking.
fn wait(rx: &Receiver<()>) -> Result<(), String> {
    let until = Instant::now() + POLL_FOR;
    loop {
        match rx.try_recv() {
            Ok(()) => return Ok(()),
            Err(TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
            Err(TryRecvError::Empty) => return rx.recv_timeout(TIMEOUT).map_err(|e| e.to_string()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `count` payloads of `payload` bytes from `threads` threads at once, each waiting for its
/// acknowledgement before the next (see the module comment); payloads per second, from the
/// first send until the last acknowledgement.
pub fn acked_throughput(count: usize, threads: usize, payload: usize) -> Result<f64, String> {
    let threads = threads.clamp(1, count.max(1));
    let (to_receiver, receiver_rx) = crossbeam_channel::unbounded::<(usize, Vec<u8>)>();
    let (to_acker, acker_rx) = crossbeam_channel::unbounded::<usize>();
    let (wakers, waits): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| crossbeam_channel::unbounded::<()>())
        .unzip();
    let receiver = std::thread::spawn(move || {
        while let Ok((sender, data)) = receiver_rx.recv() {
            std::hint::black_box(data);
            if to_acker.send(sender).is_err() {
                return;
            }
        }
    });
    let acker = std::thread::spawn(move || {
        while let Ok(sender) = acker_rx.recv() {
            if let Some(w) = wakers.get(sender) {
                let _ = w.send(());
            }
        }
    });
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads + 1));
    let senders: Vec<_> = waits
        .into_iter()
        .enumerate()
        .map(|(i, woken)| {
            let n = count / threads + usize::from(i < count % threads);
            let (tx, barrier) = (to_receiver.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<(), String> {
                barrier.wait();
                for _ in 0..n {
                    tx.send((i, vec![0xa5; payload]))
                        .map_err(|e| e.to_string())?;
                    wait(&woken)?;
                }
                Ok(())
            })
        })
        .collect();
    drop(to_receiver);
    barrier.wait();
    let t0 = Instant::now();
    for s in senders {
        s.join().map_err(|_| "a bare sender panicked")??;
    }
    let elapsed = t0.elapsed();
    let _ = receiver.join();
    let _ = acker.join();
    Ok(count as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// `count` payloads of `payload` bytes from one thread that keeps up to `window` of them
/// unacknowledged, through the same three hand-offs (sender, receiver, acknowledger, sender);
/// payloads per second, from the first send until the last acknowledgement.
pub fn pipelined_throughput(count: usize, window: usize, payload: usize) -> Result<f64, String> {
    let window = window.max(1);
    let (to_receiver, receiver_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let (to_acker, acker_rx) = crossbeam_channel::unbounded::<()>();
    let (waker, woken) = crossbeam_channel::unbounded::<()>();
    let receiver = std::thread::spawn(move || {
        while let Ok(data) = receiver_rx.recv() {
            std::hint::black_box(data);
            if to_acker.send(()).is_err() {
                return;
            }
        }
    });
    let acker = std::thread::spawn(move || {
        while let Ok(()) = acker_rx.recv() {
            if waker.send(()).is_err() {
                return;
            }
        }
    });
    let t0 = Instant::now();
    let mut in_flight = 0;
    for _ in 0..count {
        if in_flight == window {
            wait(&woken)?;
            in_flight -= 1;
        }
        to_receiver
            .send(vec![0xa5; payload])
            .map_err(|e| e.to_string())?;
        in_flight += 1;
    }
    for _ in 0..in_flight {
        wait(&woken)?;
    }
    let elapsed = t0.elapsed();
    drop(to_receiver);
    let _ = receiver.join();
    let _ = acker.join();
    Ok(count as f64 / elapsed.as_secs_f64().max(1e-9))
}
