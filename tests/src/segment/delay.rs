//! Precise delays for the fake's latency. Tokio's timer counts whole milliseconds and rounds
//! every deadline up, which made a 20 ms latency 21–22 ms: 5–10 % on every request, enough to
//! blur a benchmark measured against requests × latency / concurrency. One thread per fake
//! sleeps until the earliest deadline with the OS's fine-grained timer and wakes its waiters.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;
use tokio::sync::oneshot;

/// Hands out waits that end at a given instant.
#[derive(Debug)]
pub struct Delays {
    tx: mpsc::Sender<(Instant, oneshot::Sender<()>)>,
}

impl Default for Delays {
    fn default() -> Self {
        Self::new()
    }
}

impl Delays {
    /// Starts the timer thread; it ends when the `Delays` is dropped.
    pub fn new() -> Delays {
        let (tx, rx) = mpsc::channel::<(Instant, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("fake-segment-delays".into())
            .spawn(move || {
                // Earliest deadline first; the sequence number keeps entries apart.
                let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
                let mut waiters = std::collections::HashMap::new();
                let mut seq = 0u64;
                loop {
                    let now = Instant::now();
                    while let Some(Reverse((at, id))) = due.peek().copied() {
                        if at > now {
                            break;
                        }
                        due.pop();
                        if let Some(tx) = waiters.remove(&id) {
                            let _: Result<(), ()> = oneshot::Sender::send(tx, ());
                        }
                    }
                    let next = match due.peek() {
                        Some(Reverse((at, _))) => {
                            rx.recv_timeout(at.saturating_duration_since(now))
                        }
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok((at, tx)) => {
                            seq += 1;
                            due.push(Reverse((at, seq)));
                            waiters.insert(seq, tx);
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .expect("the fake's timer thread starts");
        Delays { tx }
    }

    /// Waits until `at`.
    pub async fn until(&self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if self.tx.send((at, tx)).is_ok() {
            let _ = rx.await;
        } else {
            // The timer thread is gone (it never stops while `self` lives): tokio's timer.
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_end_at_their_instant_in_order() {
        let delays = std::sync::Arc::new(Delays::new());
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for ms in [30u64, 10, 20] {
            let delays = delays.clone();
            set.spawn(async move {
                delays.until(start + Duration::from_millis(ms)).await;
                (ms, Instant::now())
            });
        }
        let mut ended = set.join_all().await;
        ended.sort_by_key(|(_, at)| *at);
        assert_eq!(
            ended.iter().map(|(ms, _)| *ms).collect::<Vec<_>>(),
            [10, 20, 30]
        );
        for (ms, at) in ended {
            assert!(at >= start + Duration::from_millis(ms), "never early");
        }
    }
}
