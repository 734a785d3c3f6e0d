//! Polling with a deadline. Durations here are generous upper bounds, never expectations: a
//! slow machine makes a test slower, not red.

use std::{future::Future, time::Duration};

use tokio::time::{Instant, sleep};

use crate::E2eError;

const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One observation of a polled condition.
#[derive(Debug)]
pub enum Check<T> {
    /// The condition holds; polling stops with this value.
    Done(T),
    /// Not yet, and what was seen instead (reported if the deadline passes).
    NotYet(String),
}

/// Calls `check` until it returns [`Check::Done`] or `timeout` passes. Errors are treated as
/// transient (a resource not created yet, a cache lagging) except the operator exiting; the
/// last observation or error is kept for the timeout message.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, E2eError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, E2eError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Check::Done(value)) => return Ok(value),
            Ok(Check::NotYet(seen)) => seen,
            // Not transient: the operator will not come back, so stop waiting at once.
            Err(err @ E2eError::OperatorExited { .. }) => return Err(err),
            Err(err) => err.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(E2eError::Timeout {
                what: what.to_owned(),
                waited: timeout,
                last,
            });
        }
        sleep(POLL_INTERVAL).await;
    }
}
