//! The engine thread: owns the backend and the queue. Callers submit row batches and await a
//! oneshot reply; inference never runs on tokio's workers. Admission is bounded in rows, held by
//! a request across all its runs, and refused at once when full; jobs whose caller has gone or
//! whose deadline has passed are dropped before they run; waiting jobs of the same graph are
//! merged into one run (see `batching`). A panic in a run is contained: its jobs fail, the
//! engine goes on.

use std::{
    collections::VecDeque,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        atomic::Ordering,
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::{
    backend::{Backend, BackendError, Batch, GraphKind, Outputs},
    batching::{self, BatchPolicy},
};
use crate::metrics::EngineMetrics;
use prometheus_client::metrics::gauge::Gauge;

/// Why the engine did not run a batch.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine has admitted as many rows as it holds.
    #[error("the engine is full ({admitted} rows admitted, capacity {capacity}); retry shortly")]
    Overloaded {
        /// Rows of admitted requests not yet finished.
        admitted: usize,
        /// Capacity in rows.
        capacity: usize,
    },
    /// The caller's deadline passed before the batch could run.
    #[error("the deadline passed before the engine could run the request")]
    DeadlineExceeded,
    /// The engine thread has stopped.
    #[error("the inference engine has stopped")]
    Stopped,
    /// The engine failed while handling the job (a panic, contained; the engine goes on).
    #[error("the inference engine failed while running the request; see the server log")]
    Lost,
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// What a run returned to one job, with where the time went.
#[derive(Debug)]
pub struct Ran {
    /// The outputs the job asked for, its rows only.
    pub outputs: Outputs,
    /// Time the job waited in the queue.
    pub queued: Duration,
    /// Time the backend took for the whole merged run.
    pub inference: Duration,
    /// The job's rows.
    pub rows: usize,
    /// Rows of the merged run that carried the job.
    pub batch_rows: usize,
}

/// Rows a request holds from its admission until it is dropped (finished, failed or abandoned),
/// across all of its engine runs: an admitted request never fails half-way for lack of room.
#[derive(Debug)]
pub struct Permit {
    rows: i64,
    admitted: Gauge,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admitted.dec_by(self.rows);
    }
}

struct Job {
    batch: Batch,
    rows: usize,
    enqueued: Instant,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Ran, EngineError>>,
    queued: Queued,
}

impl Job {
    /// Answers the caller, its rows leaving the queued-rows gauge first: a caller that reads the
    /// gauge once answered never sees its own rows there.
    fn answer(self, result: Result<Ran, EngineError>) {
        let Self { reply, queued, .. } = self;
        drop(queued);
        let _ = reply.send(result);
    }
}

/// A job's rows in the queued-rows gauge, from the moment it is sent to the engine until it is
/// answered or dropped unrun.
struct Queued {
    rows: usize,
    metrics: EngineMetrics,
}

impl Queued {
    fn new(rows: usize, metrics: &EngineMetrics) -> Self {
        metrics.queued(rows as i64);
        Self { rows, metrics: metrics.clone() }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.metrics.queued(-(self.rows as i64));
    }
}

/// A cheap handle to the engine thread; the thread stops when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    sender: Sender<Job>,
    /// Rows held by admitted requests: the `explain_engine_admitted_rows` gauge itself.
    admitted: Gauge,
    capacity: usize,
    execution_provider: String,
    metrics: EngineMetrics,
}

impl EngineHandle {
    /// Starts a thread that owns `backend` and batches with `policy`; requests holding at most
    /// `capacity` rows together are admitted. Admission, the queue and every run are counted in
    /// `metrics`.
    pub fn spawn<B: Backend>(
        backend: B,
        capacity: usize,
        policy: BatchPolicy,
        metrics: EngineMetrics,
    ) -> std::io::Result<Self> {
        let execution_provider = backend.execution_provider().to_owned();
        let (sender, receiver) = mpsc::channel::<Job>();
        let worker = Worker { backend, receiver, pending: VecDeque::new(), policy, metrics: metrics.clone() };
        std::thread::Builder::new().name("explain-engine".into()).spawn(move || worker.run())?;
        let admitted = metrics.admitted_rows();
        Ok(Self { sender, admitted, capacity: capacity.max(1), execution_provider, metrics })
    }

    /// Admits a request that will put `rows` rows through the engine, or refuses it at once when
    /// the admitted rows would pass the capacity. A request larger than the capacity is admitted
    /// when nothing else is.
    pub fn admit(&self, rows: usize) -> Result<Permit, EngineError> {
        let (wanted, capacity) =
            (i64::try_from(rows).unwrap_or(i64::MAX), i64::try_from(self.capacity).unwrap_or(i64::MAX));
        let result = self.admitted.inner().fetch_update(Ordering::SeqCst, Ordering::SeqCst, |admitted| {
            (admitted == 0 || admitted.saturating_add(wanted) <= capacity).then(|| admitted.saturating_add(wanted))
        });
        match result {
            Ok(_) => Ok(Permit { rows: wanted, admitted: self.admitted.clone() }),
            Err(admitted) => {
                self.metrics.refused();
                Err(EngineError::Overloaded {
                    admitted: usize::try_from(admitted).unwrap_or(0),
                    capacity: self.capacity,
                })
            }
        }
    }

    /// Runs `batch` (merged with other waiting batches of its graph) for an admitted request and
    /// waits for its rows' outputs without blocking the async runtime; dropped unrun if
    /// `deadline` passes first or the caller stops waiting.
    pub async fn run(&self, batch: Batch, deadline: Option<Instant>, _admitted: &Permit) -> Result<Ran, EngineError> {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(EngineError::DeadlineExceeded);
        }
        let rows = batch.images.shape()[0];
        let (reply, answer) = oneshot::channel();
        let queued = Queued::new(rows, &self.metrics);
        let job = Job { batch, rows, enqueued: Instant::now(), deadline, reply, queued };
        if self.sender.send(job).is_err() {
            return Err(EngineError::Stopped);
        }
        answer.await.map_err(|_| EngineError::Lost)?
    }

    /// The execution provider the backend runs on.
    pub fn execution_provider(&self) -> &str {
        &self.execution_provider
    }
}

/// The engine thread's state.
struct Worker<B> {
    backend: B,
    receiver: Receiver<Job>,
    pending: VecDeque<Job>,
    policy: BatchPolicy,
    metrics: EngineMetrics,
}

impl<B: Backend> Worker<B> {
    fn run(mut self) {
        while self.fill() {
            // A panic anywhere in batching, running (the backend included) or splitting is
            // contained here: the jobs it held are dropped (their callers get `Lost`), and the
            // engine takes the next ones.
            let step = catch_unwind(AssertUnwindSafe(|| {
                let jobs = self.next_batch();
                if !jobs.is_empty() {
                    self.execute(jobs);
                }
            }));
            if step.is_err() {
                tracing::error!("the engine panicked; the requests of that run failed, the engine goes on");
            }
        }
        tracing::debug!("engine thread stopped");
    }

    /// Waits for at least one pending job; takes whatever else has arrived. False once every
    /// handle is gone and nothing is pending.
    fn fill(&mut self) -> bool {
        if self.pending.is_empty() {
            match self.receiver.recv() {
                Ok(job) => self.pending.push_back(job),
                Err(_) => return false,
            }
        }
        self.pending.extend(self.receiver.try_iter());
        true
    }

    /// Rows of `graph`'s waiting jobs that fit in one run with the oldest of them, in arrival order.
    fn fitting_rows(&self, graph: GraphKind) -> usize {
        let mut rows = 0;
        for job in self.pending.iter().filter(|job| job.batch.graph == graph) {
            if rows > 0 && rows + job.rows > self.policy.max_batch_size {
                break;
            }
            rows += job.rows;
        }
        rows
    }

    /// The oldest job and the jobs of its graph that fit with it, in arrival order, after waiting
    /// up to the queue delay for more. Jobs whose caller is gone or whose deadline passed leave
    /// the queue unrun.
    fn next_batch(&mut self) -> Vec<Job> {
        let Some(oldest) = self.pending.front() else { return Vec::new() };
        let (graph, opened) = (oldest.batch.graph, oldest.enqueued);
        while self.fitting_rows(graph) < self.policy.max_batch_size {
            let remaining = (opened + self.policy.max_queue_delay).saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(remaining) {
                Ok(job) => self.pending.push_back(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let budget = self.fitting_rows(graph);
        let (mut rows, mut index, mut taken) = (0, 0, Vec::new());
        while rows < budget && index < self.pending.len() {
            if self.pending[index].batch.graph != graph {
                index += 1;
                continue;
            }
            if let Some(job) = self.pending.remove(index) {
                rows += job.rows;
                taken.push(job);
            }
        }
        let now = Instant::now();
        taken
            .into_iter()
            .filter_map(|job| {
                if job.reply.is_closed() {
                    tracing::debug!("caller gone; rows dropped before the run");
                    None
                } else if job.deadline.is_some_and(|deadline| now >= deadline) {
                    job.answer(Err(EngineError::DeadlineExceeded));
                    None
                } else {
                    Some(job)
                }
            })
            .collect()
    }

    /// Runs `jobs` as one batch and answers each with its rows.
    fn execute(&mut self, jobs: Vec<Job>) {
        let parts: Vec<&Batch> = jobs.iter().map(|job| &job.batch).collect();
        let graph = parts.first().map_or(GraphKind::Forward, |part| part.graph);
        let started = Instant::now();
        let result = batching::run_as_one(&parts, |batch| self.backend.run(batch));
        let inference = started.elapsed();
        match result {
            Ok((answers, batch_rows)) => {
                self.metrics.ran(graph.name(), batch_rows, inference);
                for (job, outputs) in jobs.into_iter().zip(answers) {
                    let ran = outputs.map(|outputs| Ran {
                        outputs,
                        queued: started.saturating_duration_since(job.enqueued),
                        inference,
                        rows: job.rows,
                        batch_rows,
                    });
                    job.answer(ran.map_err(EngineError::from));
                }
            }
            Err(error) => {
                tracing::error!(%error, jobs = jobs.len(), "engine run failed");
                for job in jobs {
                    job.answer(Err(EngineError::Backend(error.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex, atomic::AtomicUsize},
    };

    use ndarray::{Array4, ArrayD, Axis, IxDyn};

    use super::*;
    use crate::engine::{Output, RowSettings};

    /// A backend that returns each row's sum (as its logits), records the size of every run, and takes
    /// `delay` per run.
    struct Fake {
        runs: Arc<Mutex<Vec<usize>>>,
        started: Arc<AtomicUsize>,
        delay: Duration,
    }

    impl Backend for Fake {
        fn run(&mut self, batch: &Batch) -> Result<Outputs, BackendError> {
            self.started.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            let rows = batch.images.len_of(Axis(0));
            self.runs.lock().expect("lock").push(rows);
            assert!(!batch.images.iter().any(|value| value.is_nan()), "a bug inside the backend");
            if batch.images.iter().any(|&value| value < 0.0) {
                // A malformed answer: fewer rows than the batch.
                return Ok(HashMap::from([(Output::Logits, ArrayD::zeros(IxDyn(&[0])))]));
            }
            let sums: Vec<f32> = batch.images.axis_iter(Axis(0)).map(|row| row.sum()).collect();
            Ok(HashMap::from([(Output::Logits, ArrayD::from_shape_vec(IxDyn(&[rows]), sums).expect("shape"))]))
        }

        fn execution_provider(&self) -> &str {
            "Fake"
        }
    }

    struct Probe {
        runs: Arc<Mutex<Vec<usize>>>,
        started: Arc<AtomicUsize>,
    }

    fn engine(delay: Duration, capacity: usize, policy: BatchPolicy) -> (EngineHandle, Probe) {
        let (runs, started) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicUsize::new(0)));
        let fake = Fake { runs: runs.clone(), started: started.clone(), delay };
        (EngineHandle::spawn(fake, capacity, policy, EngineMetrics::default()).expect("spawn"), Probe { runs, started })
    }

    /// Waits until `condition` holds.
    async fn until(what: &str, condition: impl Fn() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    /// Admits `batch`'s rows and runs it.
    async fn run(engine: &EngineHandle, batch: Batch, deadline: Option<Instant>) -> Result<Ran, EngineError> {
        let permit = engine.admit(batch.images.shape()[0])?;
        engine.run(batch, deadline, &permit).await
    }

    fn batch(rows: usize, value: f32) -> Batch {
        Batch {
            graph: GraphKind::Forward,
            images: Array4::from_elem((rows, 1, 1, 1), value),
            settings: RowSettings::default(),
            outputs: vec![Output::Logits],
        }
    }

    const WAIT: BatchPolicy = BatchPolicy { max_batch_size: 8, max_queue_delay: Duration::from_millis(300) };

    #[tokio::test]
    async fn waiting_jobs_merge_into_one_run_and_get_their_own_rows() {
        let (engine, probe) = engine(Duration::ZERO, 64, WAIT);
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let engine = engine.clone();
                tokio::spawn(async move { run(&engine, batch(2, i as f32), None).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let ran = call.await.expect("task").expect("run");
            assert_eq!(ran.outputs[&Output::Logits].as_slice(), Some(&[i as f32, i as f32][..]));
            assert_eq!((ran.rows, ran.batch_rows), (2, 8));
        }
        assert_eq!(*probe.runs.lock().expect("lock"), [8]);
    }

    #[tokio::test]
    async fn runs_never_exceed_the_batch_size_unless_one_job_does() {
        let policy = BatchPolicy { max_batch_size: 3, max_queue_delay: Duration::from_millis(100) };
        let (engine, probe) = engine(Duration::ZERO, 64, policy);
        let calls: Vec<_> = [2, 2, 5, 1]
            .into_iter()
            .map(|rows| {
                let engine = engine.clone();
                tokio::spawn(async move { run(&engine, batch(rows, 1.0), None).await })
            })
            .collect();
        for call in calls {
            call.await.expect("task").expect("run");
        }
        let runs = probe.runs.lock().expect("lock").clone();
        assert_eq!(runs.iter().sum::<usize>(), 10);
        assert!(runs.iter().all(|&rows| rows <= 3 || rows == 5), "{runs:?}");
    }

    #[tokio::test]
    async fn a_full_engine_refuses_and_deadlines_and_departed_callers_skip_the_run() {
        let policy = BatchPolicy { max_batch_size: 8, max_queue_delay: Duration::ZERO };
        let (engine, probe) = engine(Duration::from_millis(300), 3, policy);
        let spawn = |rows, value, deadline| {
            let engine = engine.clone();
            tokio::spawn(async move { run(&engine, batch(rows, value), deadline).await })
        };
        // The first job runs for 300 ms; meanwhile two wait: three rows admitted, the capacity.
        let first = spawn(1, 1.0, None);
        until("the first job runs", || probe.started.load(Ordering::SeqCst) == 1).await;
        let expiring = spawn(1, 2.0, Some(Instant::now() + Duration::from_millis(100)));
        let departing = spawn(1, 3.0, None);
        until("three rows are admitted", || engine.admitted.get() == 3).await;
        let refused = engine.admit(1);
        assert!(matches!(refused, Err(EngineError::Overloaded { admitted: 3, capacity: 3 })), "{refused:?}");
        departing.abort();
        first.await.expect("task").expect("first runs");
        assert!(matches!(expiring.await.expect("task"), Err(EngineError::DeadlineExceeded)));
        let past = run(&engine, batch(1, 5.0), Some(Instant::now())).await;
        assert!(matches!(past, Err(EngineError::DeadlineExceeded)));
        run(&engine, batch(1, 6.0), None).await.expect("the engine has room again");
        assert_eq!(*probe.runs.lock().expect("lock"), [1, 1], "only the first and the last job ran");
        assert_eq!(engine.admitted.get(), 0, "every permit was returned");
    }

    #[tokio::test]
    async fn an_admitted_request_keeps_its_rows_across_runs() {
        let policy = BatchPolicy { max_batch_size: 2, max_queue_delay: Duration::ZERO };
        let (engine, _probe) = engine(Duration::ZERO, 4, policy);
        let permit = engine.admit(4).expect("room for four rows");
        assert!(matches!(engine.admit(1), Err(EngineError::Overloaded { admitted: 4, .. })));
        for value in [1.0, 2.0] {
            engine.run(batch(2, value), None, &permit).await.expect("each run of the admitted request");
            assert!(engine.admit(1).is_err(), "its rows stay reserved between runs");
        }
        drop(permit);
        let larger = engine.admit(9).expect("a request larger than the capacity runs alone");
        assert!(engine.admit(1).is_err());
        drop(larger);
    }

    #[tokio::test]
    async fn a_malformed_answer_or_a_panic_fails_its_run_and_the_engine_goes_on() {
        let policy = BatchPolicy { max_batch_size: 8, max_queue_delay: Duration::ZERO };
        let (engine, probe) = engine(Duration::ZERO, 64, policy);
        let failed = run(&engine, batch(2, -1.0), None).await;
        assert!(matches!(failed, Err(EngineError::Backend(BackendError::Run(_)))), "{failed:?}");
        let panicked = run(&engine, batch(1, f32::NAN), None).await;
        assert!(matches!(panicked, Err(EngineError::Lost)), "a panic in the run: {panicked:?}");
        let ran = run(&engine, batch(1, 3.0), None).await.expect("the engine still runs");
        assert_eq!(ran.outputs[&Output::Logits].as_slice(), Some(&[3.0][..]));
        assert_eq!(*probe.runs.lock().expect("lock"), [2, 1, 1]);
        assert_eq!(engine.admitted.get(), 0, "no rows leaked from the admission count");
    }
}
