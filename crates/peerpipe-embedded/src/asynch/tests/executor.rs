//! The test executor: virtual time (`MockClock`) and `block_on`, which polls a task only
//! when its waker was called and, when no task can move, jumps the clock to the earliest
//! armed timer.

use super::*;

/// Virtual time: `at` futures complete once the executor moved `now` past them.
#[derive(Default)]
pub(super) struct MockClock {
    now: Cell<u64>,
    /// The armed timers: deadline and the waker of the task waiting for it.
    timers: RefCell<Vec<(u64, Waker)>>,
}

impl Clock for MockClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.now.get())
    }

    fn at(&self, deadline: Instant) -> impl Future<Output = ()> {
        poll_fn(move |cx| {
            let d = deadline.as_micros();
            if self.now.get() >= d {
                return Poll::Ready(());
            }
            self.timers.borrow_mut().push((d, cx.waker().clone()));
            Poll::Pending
        })
    }
}

impl MockClock {
    /// Waits `millis` of virtual time.
    pub(super) async fn sleep(&self, millis: u64) {
        self.at(self.now() + Duration::from_millis(millis)).await
    }
}

pub(super) struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A task that never ends (a runner).
pub(super) type Background<'a> = Pin<&'a mut dyn Future<Output = Infallible>>;

/// Runs `main` to completion in virtual time (at most one virtual hour), with the
/// `background` tasks beside it. Each task is polled only after its waker was called.
pub(super) fn block_on<F: Future>(
    clock: &MockClock,
    main: F,
    background: &mut [Background<'_>],
) -> F::Output {
    let flags: Vec<Arc<Flag>> = (0..=background.len())
        .map(|_| Arc::new(Flag(AtomicBool::new(true))))
        .collect();
    let wakers: Vec<Waker> = flags.iter().map(|f| Waker::from(f.clone())).collect();
    let mut main = pin!(main);
    loop {
        let mut ran = false;
        if flags[0].0.swap(false, Ordering::SeqCst) {
            ran = true;
            if let Poll::Ready(out) = main.as_mut().poll(&mut Context::from_waker(&wakers[0])) {
                return out;
            }
        }
        for (task, (flag, waker)) in background.iter_mut().zip(flags.iter().zip(&wakers).skip(1)) {
            if flag.0.swap(false, Ordering::SeqCst) {
                ran = true;
                let _ = task.as_mut().poll(&mut Context::from_waker(waker));
            }
        }
        if ran {
            continue;
        }
        // Nothing can move: time jumps to the earliest timer, which is woken.
        let mut timers = clock.timers.borrow_mut();
        let next = timers
            .iter()
            .map(|(d, _)| *d)
            .min()
            .expect("stalled: no task was woken and no timer is armed");
        assert!(next < 3_600_000_000, "still running after a virtual hour");
        clock.now.set(next);
        timers.retain(|(d, waker)| {
            if *d <= next {
                waker.wake_by_ref();
            }
            *d > next
        });
    }
}
