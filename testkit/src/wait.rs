//! Waiting on conditions with a deadline. A test that needs something to have happened polls
//! for it and fails naming what it waited for; it never sleeps for a guessed duration.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` until it returns `Some`, blocking the thread; panics naming `what` when
/// `within` passes first.
pub fn wait_until<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls the async `probe` until it returns `Some`; panics naming `what` when `within` passes
/// first.
pub async fn eventually<T, F>(within: Duration, what: &str, mut probe: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn wait_until_returns_the_first_value() {
        let n = Cell::new(0);
        let v = wait_until(Duration::from_secs(5), "three polls", || {
            n.set(n.get() + 1);
            (n.get() == 3).then_some("done")
        });
        assert_eq!((v, n.get()), ("done", 3));
    }

    #[test]
    #[should_panic(expected = "timed out waiting for: never")]
    fn wait_until_fails_naming_the_condition() {
        wait_until::<()>(Duration::from_millis(30), "never", || None);
    }

    #[tokio::test]
    async fn eventually_awaits_the_probe() {
        let mut n = 0;
        let v = eventually(Duration::from_secs(5), "two polls", || {
            n += 1;
            let ready = n == 2;
            async move { ready.then_some(n) }
        })
        .await;
        assert_eq!(v, 2);
    }
}
