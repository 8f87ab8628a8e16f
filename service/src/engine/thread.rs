//! The engine thread: owns the backend, takes batches from a bounded queue and answers each
//! through a oneshot channel. Inference never runs on tokio's workers; a full queue is refused at
//! once rather than waited on; a batch whose caller has gone is skipped.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::mpsc::{self, SyncSender, TrySendError},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::backend::{Backend, BackendError, Batch, Outputs};

/// Why the engine did not run a batch.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The queue is full.
    #[error("the engine queue is full ({capacity} batches waiting)")]
    Overloaded {
        /// Queue capacity.
        capacity: usize,
    },
    /// The engine thread has stopped.
    #[error("the inference engine has stopped")]
    Stopped,
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// What a run returned, with where the time went.
#[derive(Debug)]
pub struct Ran {
    /// The outputs asked for.
    pub outputs: Outputs,
    /// Time spent waiting in the queue.
    pub queued: Duration,
    /// Time the backend took.
    pub inference: Duration,
    /// Rows of the batch that ran.
    pub rows: usize,
}

struct Job {
    batch: Batch,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Ran, BackendError>>,
}

/// A cheap handle to the engine thread; the thread stops when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    sender: SyncSender<Job>,
    capacity: usize,
    execution_provider: String,
}

impl EngineHandle {
    /// Starts a thread that owns `backend`, with room for `capacity` waiting batches.
    pub fn spawn<B: Backend>(mut backend: B, capacity: usize) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let execution_provider = backend.execution_provider().to_owned();
        let (sender, receiver) = mpsc::sync_channel::<Job>(capacity);
        std::thread::Builder::new().name("explain-engine".into()).spawn(move || {
            for job in receiver {
                if job.reply.is_closed() {
                    tracing::debug!("caller gone; batch skipped");
                    continue;
                }
                let queued = job.enqueued.elapsed();
                let started = Instant::now();
                let rows = job.batch.images.shape()[0];
                let result = catch_unwind(AssertUnwindSafe(|| backend.run(&job.batch)))
                    .unwrap_or_else(|_| Err(BackendError::Run("the backend panicked".into())))
                    .map(|outputs| Ran { outputs, queued, inference: started.elapsed(), rows });
                // The caller may have gone while the batch ran; nothing to do then.
                let _ = job.reply.send(result);
            }
            tracing::debug!("engine thread stopped");
        })?;
        Ok(Self { sender, capacity, execution_provider })
    }

    /// Runs `batch` and waits for its outputs without blocking the async runtime.
    pub async fn run(&self, batch: Batch) -> Result<Ran, EngineError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { batch, enqueued: Instant::now(), reply };
        self.sender.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => EngineError::Overloaded { capacity: self.capacity },
            TrySendError::Disconnected(_) => EngineError::Stopped,
        })?;
        Ok(answer.await.map_err(|_| EngineError::Stopped)??)
    }

    /// The execution provider the backend runs on.
    pub fn execution_provider(&self) -> &str {
        &self.execution_provider
    }
}
