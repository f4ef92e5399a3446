//! Request deadlines of one proxy worker (the upstream's answer, a stalled body): a waiting
//! request registers its deadline in a slab that one periodic sweep checks, instead of arming a
//! runtime timer per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The deadline passed before the future finished.
#[derive(Debug, PartialEq, Eq)]
pub struct Elapsed;

/// The deadlines of one worker's waiting requests. The lock is only ever taken by that worker's
/// thread (and the sweep runs on it too), so it is never contended.
pub struct Deadlines {
    slots: Mutex<Slots>,
    tick: Duration,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Slot>,
    free: Vec<usize>,
}

struct Slot {
    deadline: Instant,
    waker: Option<Waker>,
    expired: bool,
}

impl Deadlines {
    /// Deadlines noticed within `precision` of passing.
    pub fn new(precision: Duration) -> Self {
        Deadlines { slots: Mutex::new(Slots::default()), tick: precision.max(Duration::from_millis(1)) }
    }

    /// How often [`Deadlines::sweep`] must run.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Runs `fut` until it finishes or `deadline` passes (noticed by the next sweep).
    pub fn limit<F: Future>(&self, deadline: Instant, fut: F) -> Limited<'_, F, impl Fn() -> Instant> {
        self.watch(move || deadline, fut)
    }

    /// Runs `fut` until it finishes or the deadline `deadline()` gives passes; the deadline may
    /// move as the request goes on (it is asked again on every wake-up).
    pub fn watch<F: Future, D: Fn() -> Instant>(&self, deadline: D, fut: F) -> Limited<'_, F, D> {
        Limited { fut, deadlines: self, deadline, timer: Timer::default() }
    }

    /// Marks every passed deadline and wakes its request.
    pub fn sweep(&self, now: Instant) {
        let Ok(mut slots) = self.slots.lock() else { return };
        for slot in slots.entries.iter_mut().filter(|s| s.waker.is_some() && !s.expired && s.deadline <= now) {
            slot.expired = true;
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// Ready once `deadline` has passed, as seen by a sweep. Pending keeps `cx`'s waker for the
    /// sweep. A deadline that moved later since the sweep marked it is waited for anew.
    pub fn poll_timer(&self, timer: &mut Timer, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let Ok(mut slots) = self.slots.lock() else { return Poll::Pending };
        let Some(i) = timer.slot else {
            let slot = Slot { deadline, waker: Some(cx.waker().clone()), expired: false };
            timer.slot = Some(match slots.free.pop() {
                Some(i) => {
                    slots.entries[i] = slot;
                    i
                }
                None => {
                    slots.entries.push(slot);
                    slots.entries.len() - 1
                }
            });
            return Poll::Pending;
        };
        let slot = &mut slots.entries[i];
        if slot.expired {
            if deadline > slot.deadline && deadline > Instant::now() {
                slot.expired = false;
            } else {
                return Poll::Ready(());
            }
        }
        slot.deadline = deadline;
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Gives the timer's slot back; owners call it when they are dropped.
    pub fn release(&self, timer: &mut Timer) {
        if let Some(i) = timer.slot.take()
            && let Ok(mut slots) = self.slots.lock()
        {
            slots.entries[i].waker = None;
            slots.free.push(i);
        }
    }
}

/// A place in [`Deadlines`], taken on the first wait; give it back with [`Deadlines::release`].
#[derive(Debug, Default)]
pub struct Timer {
    slot: Option<usize>,
}

pin_project_lite::pin_project! {
    /// A future limited by a deadline; it only takes a slot once it has to wait.
    pub struct Limited<'a, F, D> {
        #[pin]
        fut: F,
        deadlines: &'a Deadlines,
        deadline: D,
        timer: Timer,
    }

    impl<F, D> PinnedDrop for Limited<'_, F, D> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.deadlines.release(this.timer);
        }
    }
}

impl<F: Future, D: Fn() -> Instant> Future for Limited<'_, F, D> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match this.deadlines.poll_timer(this.timer, (this.deadline)(), cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll_once<F: Future>(f: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_ready_future_never_takes_a_slot() {
        let d = Deadlines::new(Duration::from_millis(10));
        let waker = Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))));
        let mut f = std::pin::pin!(d.limit(Instant::now(), std::future::ready(7)));
        assert_eq!(poll_once(f.as_mut(), &waker), Poll::Ready(Ok(7)));
        assert!(d.slots.lock().expect("lock").entries.is_empty());
    }

    #[test]
    fn a_waiting_future_fails_after_the_sweep_past_its_deadline_and_frees_its_slot() {
        let d = Deadlines::new(Duration::from_millis(10));
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let start = Instant::now();
        {
            let mut f = std::pin::pin!(d.limit(start + Duration::from_secs(5), std::future::pending::<()>()));
            assert_eq!(poll_once(f.as_mut(), &waker), Poll::Pending);
            d.sweep(start + Duration::from_secs(4));
            assert_eq!(counter.0.load(Ordering::SeqCst), 0, "not woken before the deadline");
            assert_eq!(poll_once(f.as_mut(), &waker), Poll::Pending);
            d.sweep(start + Duration::from_secs(5));
            assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken by the sweep at the deadline");
            assert_eq!(poll_once(f.as_mut(), &waker), Poll::Ready(Err(Elapsed)));
        }
        let slots = d.slots.lock().expect("lock");
        assert_eq!((slots.entries.len(), slots.free.len()), (1, 1), "the slot is free again");
    }

    #[test]
    fn slots_are_reused_and_each_future_keeps_its_own_deadline() {
        let d = Deadlines::new(Duration::from_millis(10));
        let waker = Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))));
        let start = Instant::now();
        let mut early = Box::pin(d.limit(start + Duration::from_secs(1), std::future::pending::<()>()));
        let mut late = Box::pin(d.limit(start + Duration::from_secs(9), std::future::pending::<()>()));
        assert!(poll_once(early.as_mut(), &waker).is_pending() && poll_once(late.as_mut(), &waker).is_pending());
        d.sweep(start + Duration::from_secs(2));
        assert_eq!(poll_once(early.as_mut(), &waker), Poll::Ready(Err(Elapsed)));
        assert!(poll_once(late.as_mut(), &waker).is_pending());
        drop(early);
        let mut next = Box::pin(d.limit(start + Duration::from_secs(9), std::future::pending::<()>()));
        assert!(poll_once(next.as_mut(), &waker).is_pending());
        assert_eq!(d.slots.lock().expect("lock").entries.len(), 2, "the freed slot was taken again");
    }
    #[test]
    fn a_deadline_that_moved_later_is_waited_for_anew_and_one_that_did_not_expires() {
        let d = Deadlines::new(Duration::from_millis(10));
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let start = Instant::now();
        let mut timer = Timer::default();
        assert!(d.poll_timer(&mut timer, start + Duration::from_millis(5), &mut cx).is_pending());
        d.sweep(start + Duration::from_millis(5));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken at the first deadline");
        // The body moved meanwhile: the deadline is an hour later now.
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(d.poll_timer(&mut timer, later, &mut cx).is_pending(), "re-armed, not expired");
        d.sweep(Instant::now());
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "not woken before the new deadline");
        d.sweep(later);
        assert!(d.poll_timer(&mut timer, later, &mut cx).is_ready(), "expired at the new deadline");
        d.release(&mut timer);
        assert_eq!(d.slots.lock().expect("lock").free.len(), 1);
    }
}
