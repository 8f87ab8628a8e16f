//! The bounded pool for per-request CPU work — decoding and preprocessing, filling Integrated
//! Gradients and SmoothGrad rows and folding their gradients in, baselines, post-processing and
//! rendering — so that it never runs on tokio's workers (which must keep answering health checks
//! and moving bytes), and at most a fixed number of such jobs run at once (which also bounds the
//! memory decoding can take). A panic in the work is contained and reported as an internal error.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::ExplainError;

/// Runs CPU-heavy closures on blocking threads, at most `threads` at once.
#[derive(Clone, Debug)]
pub(super) struct ComputePool {
    slots: Arc<Semaphore>,
}

impl ComputePool {
    /// A pool running at most `threads` jobs at once (0: one per core).
    pub(super) fn new(threads: usize) -> Self {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(2, usize::from) } else { threads };
        Self { slots: Arc::new(Semaphore::new(threads)) }
    }

    /// Runs `work` on the pool once a slot is free; `what` names it in errors.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ExplainError> {
        let _slot =
            self.slots.acquire().await.map_err(|_| ExplainError::Internal("the compute pool is closed".into()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| ExplainError::Internal(format!("{what} failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    #[tokio::test]
    async fn at_most_the_pool_size_runs_at_once_and_panics_are_errors() {
        let pool = ComputePool::new(2);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs: Vec<_> = (0..6)
            .map(|_| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run("test work", move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for job in jobs {
            job.await.expect("task").expect("work");
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        let panicked = pool.run("panicking work", || panic!("boom")).await;
        assert!(matches!(panicked, Err(ExplainError::Internal(message)) if message.contains("panicking work")));
        pool.run("after a panic", || ()).await.expect("the pool goes on");
    }
}
