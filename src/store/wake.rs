//! Wake-ups for idle workers: "there may be a job to claim now".
//!
//! A generation counter in a `watch` channel rather than a `tokio::sync::Notify`: each
//! waiter remembers the last generation it acted on, so a wake-up that arrives while it is
//! busy claiming is kept (the claim may have missed that job) and one that arrives while
//! it waits is seen exactly once. `Notify` could only do that with `notify_waiters` plus a
//! stored `notify_one` permit, and that permit woke an idle dispatcher a second time after
//! every notification: one wasted claim per enqueue, on the dispatch path (issue 11).

use tokio::sync::watch;

/// The sending side, owned by a store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Wakeups(std::sync::Arc<watch::Sender<u64>>);

impl Default for Wakeups {
    fn default() -> Self {
        Self(std::sync::Arc::new(watch::Sender::new(0)))
    }
}

impl Wakeups {
    /// Wake every waiter (and mark the news for those busy right now).
    pub fn wake(&self) {
        self.0.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// A new waiter: wake-ups before it existed count as seen, so its first
    /// [`Waiter::changed`] waits for the next one.
    pub fn subscribe(&self) -> Waiter {
        Waiter(self.0.subscribe())
    }
}

/// One waiter's view of [`Wakeups`].
#[derive(Debug, Clone)]
pub struct Waiter(watch::Receiver<u64>);

impl Waiter {
    /// Call right before looking for work: wake-ups until now are answered by that look.
    pub fn mark_seen(&mut self) {
        self.0.borrow_and_update();
    }

    /// Wait for a wake-up not yet marked seen (returns at once if one came meanwhile). The
    /// sender lives as long as the store, which the waiter's owner holds; should it be gone,
    /// this waits forever and the owner's idle poll takes over.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn woken(w: &mut Waiter) -> bool {
        tokio::time::timeout(Duration::from_millis(50), w.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_wake_up_is_seen_once_by_every_waiter() {
        let wakeups = Wakeups::default();
        let (mut a, mut b) = (wakeups.subscribe(), wakeups.subscribe());
        assert!(!woken(&mut a).await, "nothing happened yet");
        wakeups.wake();
        wakeups.wake();
        assert!(woken(&mut a).await && woken(&mut b).await);
        assert!(!woken(&mut a).await, "two wake-ups before a look are one");
    }

    #[tokio::test]
    async fn a_wake_up_during_a_look_is_kept_one_before_it_is_not() {
        let wakeups = Wakeups::default();
        let mut w = wakeups.subscribe();
        wakeups.wake();
        w.mark_seen(); // the look that follows answers it
        assert!(!woken(&mut w).await);
        w.mark_seen();
        wakeups.wake(); // arrives while that look runs
        assert!(woken(&mut w).await);
    }
}
