//! The ONNX Runtime backend: loads the runtime library at a given path (never downloads it),
//! chooses the execution provider (CUDA when asked for or available, else CPU with a warning),
//! and runs the model's graphs fetching only the outputs a batch names.

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::OnceLock,
};

use ndarray::{Array1, Array4};
use ort::{
    environment::Environment,
    ep::{self, ExecutionProvider},
    session::{OutputSelector, RunOptions, Session, SessionInputValue, builder::SessionBuilder},
    value::{Tensor, TensorRef, ValueType},
};

use super::backend::{Backend, BackendError, Batch, GraphKind, GraphNames, Outputs};
use crate::metrics::EngineMetrics;

/// Which execution provider to ask ONNX Runtime for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutionProviderChoice {
    /// CUDA when the runtime has it and a device answers, else CPU.
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA; falls back to CPU with a warning when it cannot be registered.
    Cuda,
}

/// How to start ONNX Runtime.
#[derive(Clone, Debug)]
pub struct OrtOptions {
    /// Path of the ONNX Runtime shared library (`libonnxruntime.so.1.x`).
    pub library: PathBuf,
    /// Execution provider wanted.
    pub execution_provider: ExecutionProviderChoice,
    /// Fail instead of falling back to CPU when CUDA cannot be used.
    pub require_cuda: bool,
    /// Threads ONNX Runtime uses inside an operator; 0 lets it choose.
    pub intra_op_threads: usize,
    /// Let intra-op threads spin for work between the operators of a run (never after it).
    pub intra_op_spinning: bool,
    /// Let CUDA use TF32 tensor cores for float32 convolutions and products (faster, ~1e-3
    /// relative error instead of ~1e-6).
    pub allow_tf32: bool,
}

/// Makes the serialised graph of a kind made on first use ([`GraphKind::made_on_first_use`]).
pub type LazyGraphs = Box<dyn FnMut(GraphKind) -> Result<Vec<u8>, String> + Send>;

/// ONNX Runtime sessions of one model.
pub struct OrtBackend {
    sessions: HashMap<GraphKind, Session>,
    names: GraphNames,
    execution_provider: &'static str,
    /// How sessions of the graphs made on first use are made: as at load, with the execution
    /// provider chosen then.
    options: OrtOptions,
    lazy: Option<Lazy>,
}

/// The graphs made on first use, and which of their sessions are held.
struct Lazy {
    make: LazyGraphs,
    /// Most sessions held at once.
    max_held: usize,
    /// The graphs whose sessions are held, least recently run first.
    held: VecDeque<GraphKind>,
    metrics: EngineMetrics,
}

impl std::fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtBackend").field("execution_provider", &self.execution_provider).finish_non_exhaustive()
    }
}

/// The process's ONNX Runtime environment, and whether it holds the shared CPU arena. The library
/// is loaded once; later calls reuse it (whatever path they name) and return the first outcome.
fn environment(library: &PathBuf) -> Result<(Environment, bool), BackendError> {
    static ENVIRONMENT: OnceLock<Result<(Environment, bool), String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let builder = ort::init_from(library)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?;
            let environment = builder.with_name("explain").build().map_err(|e| e.to_string())?;
            let shared = match share_cpu_arena(&environment) {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, "no shared CPU arena; each session grows its own");
                    false
                }
            };
            Ok((environment, shared))
        })
        .clone()
        .map_err(BackendError::Init)
}

/// Registers one CPU arena with `environment`, for every session made with
/// `session.use_env_allocators`. The engine runs one graph at a time, so the forward, head and
/// gradient sessions (and those made on first use) reuse one arena's memory instead of each
/// growing an arena to its largest batch.
#[allow(unsafe_code)] // ort has no safe wrapper for CreateAndRegisterAllocator
fn share_cpu_arena(environment: &Environment) -> Result<(), String> {
    use ort::{
        AsPointer,
        memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType},
    };
    let memory = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Arena, MemoryType::Default)
        .map_err(|e| e.to_string())?;
    let api = ort::api();
    // SAFETY: the environment and the memory info are live for the call, which copies what it
    // needs from them; a null arena configuration asks for ONNX Runtime's default arena.
    let status =
        unsafe { (api.CreateAndRegisterAllocator)(environment.ptr().cast_mut(), memory.ptr(), std::ptr::null()) };
    if status.0.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null status is ONNX Runtime's, with a NUL-terminated message; it is released
    // once, after the message is copied out.
    unsafe {
        let message = std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0)).to_string_lossy().into_owned();
        (api.ReleaseStatus)(status.0);
        Err(message)
    }
}

impl OrtBackend {
    /// Creates one session per graph, given as serialised ONNX models whose tensors `names` names.
    pub fn new(options: &OrtOptions, graphs: &[(GraphKind, Vec<u8>)], names: GraphNames) -> Result<Self, BackendError> {
        let (environment, shared_arena) = environment(&options.library)?;
        let (builder, execution_provider) = session_builder(&environment, shared_arena, options)?;
        let mut sessions = HashMap::new();
        for (kind, bytes) in graphs {
            let session = builder.clone().commit_from_memory(bytes).map_err(|e| BackendError::Init(e.to_string()))?;
            sessions.insert(*kind, session);
        }
        tracing::info!(execution_provider, "ONNX Runtime sessions ready");
        // Sessions made later get the provider chosen now, without probing for CUDA (and logging
        // the outcome) again.
        let cuda = execution_provider == ep::CUDA::NAME;
        let options = OrtOptions {
            execution_provider: if cuda { ExecutionProviderChoice::Cuda } else { ExecutionProviderChoice::Cpu },
            require_cuda: cuda,
            ..options.clone()
        };
        Ok(Self { sessions, names, execution_provider, options, lazy: None })
    }

    /// Serves the batches of graphs made on first use (tails, DeepLift) with sessions of the
    /// graphs `make` makes, each made on the first batch of its kind. At most `max_held` of them
    /// are held: each takes a share of the model's memory, and a model has a tail per layer. Making
    /// another first drops the one run least recently, which is made again when next needed.
    pub fn with_lazy_graphs(mut self, make: LazyGraphs, max_held: usize, metrics: EngineMetrics) -> Self {
        self.lazy = Some(Lazy { make, max_held: max_held.max(1), held: VecDeque::new(), metrics });
        self
    }

    /// Makes the session of `graph` if it is made on first use and not held, dropping the least
    /// recently run one first when `max_held` are.
    fn make_lazy(&mut self, graph: GraphKind) -> Result<(), BackendError> {
        let Some(lazy) = self.lazy.as_mut().filter(|_| graph.made_on_first_use()) else { return Ok(()) };
        if let Some(at) = lazy.held.iter().position(|&held| held == graph) {
            lazy.held.remove(at);
            lazy.held.push_back(graph);
            return Ok(());
        }
        while lazy.held.len() >= lazy.max_held
            && let Some(oldest) = lazy.held.pop_front()
        {
            self.sessions.remove(&oldest);
            tracing::info!(graph = ?oldest, "graph session made on first use dropped to make another");
            lazy.metrics.lazy_sessions_held(lazy.held.len());
        }
        let started = std::time::Instant::now();
        let bytes = (lazy.make)(graph).map_err(BackendError::GraphUnavailable)?;
        let (environment, shared_arena) = environment(&self.options.library)?;
        let (mut builder, _) = session_builder(&environment, shared_arena, &self.options)?;
        let session = builder.commit_from_memory(&bytes).map_err(|e| BackendError::Run(e.to_string()))?;
        tracing::info!(?graph, elapsed = ?started.elapsed(), "graph session made on first use ready");
        self.sessions.insert(graph, session);
        lazy.held.push_back(graph);
        lazy.metrics.lazy_session_made(graph.name());
        lazy.metrics.lazy_sessions_held(lazy.held.len());
        Ok(())
    }
}

/// Runs `model` (serialised) once on CPU, on zeros of `input_shape`, and returns the shape of
/// every graph output. Used at load to measure every tensor of a graph whose outputs were made to
/// include them all.
pub fn measure_shapes(
    options: &OrtOptions,
    model: &[u8],
    input_shape: [usize; 4],
) -> Result<HashMap<String, Vec<i64>>, BackendError> {
    let (environment, _) = environment(&options.library)?;
    let init = |e: ort::Error| BackendError::Init(e.to_string());
    let mut session = Session::builder(&environment).map_err(init)?.commit_from_memory(model).map_err(init)?;
    let input_name = session.inputs()[0].name().to_owned();
    let zeros = Tensor::from_array(Array4::<f32>::zeros(input_shape)).map_err(init)?;
    let outputs = session.run(ort::inputs![input_name => zeros]).map_err(|e| BackendError::Run(e.to_string()))?;
    Ok(outputs
        .iter()
        .filter_map(|(name, value)| match value.dtype() {
            ValueType::Tensor { shape, .. } => Some((name.to_owned(), shape.to_vec())),
            ValueType::Sequence(_) | ValueType::Map { .. } | ValueType::Optional(_) => None,
        })
        .collect())
}

/// A session builder with the execution provider registered, and that provider's name.
fn session_builder(
    environment: &Environment,
    shared_arena: bool,
    options: &OrtOptions,
) -> Result<(SessionBuilder, &'static str), BackendError> {
    let init = |e: ort::Error<SessionBuilder>| BackendError::Init(e.to_string());
    let mut builder = Session::builder(environment).map_err(|e| BackendError::Init(e.to_string()))?;
    if options.intra_op_threads > 0 {
        builder = builder.with_intra_threads(options.intra_op_threads).map_err(init)?;
    }
    // Spinning between operators saves a thread wake-up per operator; stopping it when a run
    // ends leaves the cores to the gRPC stack and the per-request work between runs.
    builder = builder.with_intra_op_spinning(options.intra_op_spinning).map_err(init)?;
    builder = builder.with_config_entry("session.force_spinning_stop", "1").map_err(init)?;
    if shared_arena {
        builder = builder.with_env_allocators().map_err(init)?;
    }
    let want_cuda = options.require_cuda
        || match options.execution_provider {
            ExecutionProviderChoice::Cpu => false,
            ExecutionProviderChoice::Cuda => true,
            ExecutionProviderChoice::Auto => ep::CUDA::is_available().unwrap_or(false),
        };
    if want_cuda {
        let cuda = ep::CUDA::default().with_tf32(options.allow_tf32).build().error_on_failure();
        match builder.clone().with_execution_providers([cuda]) {
            Ok(with_cuda) => return Ok((with_cuda, ep::CUDA::NAME)),
            Err(e) if options.require_cuda => {
                return Err(BackendError::Init(format!("CUDA is required (--require-cuda) but unavailable: {e}")));
            }
            Err(e) => tracing::warn!(error = %e, "the CUDA execution provider could not be registered; running on CPU"),
        }
    } else if options.execution_provider == ExecutionProviderChoice::Auto {
        tracing::info!("this ONNX Runtime build has no CUDA execution provider; running on CPU");
    }
    Ok((builder, ep::CPU::NAME))
}

impl Backend for OrtBackend {
    fn run(&mut self, batch: &Batch) -> Result<Outputs, BackendError> {
        self.make_lazy(batch.graph)?;
        let names = &self.names;
        let session = self
            .sessions
            .get_mut(&batch.graph)
            .ok_or_else(|| BackendError::Run(format!("no session for the {:?} graph", batch.graph)))?;
        let mut wanted = Vec::with_capacity(batch.outputs.len());
        for &output in &batch.outputs {
            match names.tensor(output) {
                Some(name) if session.outputs().iter().any(|graph_output| graph_output.name() == name) => {
                    wanted.push((output, name));
                }
                Some(_) | None => return Err(BackendError::UnknownOutput(output)),
            }
        }
        let run = |e: ort::Error| BackendError::Run(e.to_string());
        let input_name = session.inputs()[0].name().to_owned();
        let mut inputs: Vec<(String, SessionInputValue<'_>)> =
            vec![(input_name, TensorRef::from_array_view(&batch.images).map_err(run)?.into())];
        if batch.graph.has_row_settings() {
            let settings = &batch.settings;
            let flags = |values: &[bool]| values.iter().map(|&flag| i64::from(flag)).collect::<Vec<_>>();
            let [target, cross_entropy, guided] = &names.row_inputs;
            for (name, values) in [
                (target, settings.target.clone()),
                (cross_entropy, flags(&settings.cross_entropy)),
                (guided, flags(&settings.guided)),
            ] {
                inputs.push((name.clone(), Tensor::from_array(Array1::from(values)).map_err(run)?.into()));
            }
        }
        let selector = wanted.iter().fold(OutputSelector::no_default(), |selector, (_, name)| selector.with(*name));
        let options = RunOptions::new().map_err(run)?.with_outputs(selector);
        let outputs = session.run_with_options(inputs, &options).map_err(run)?;
        wanted
            .into_iter()
            .map(|(output, name)| {
                let value = outputs.get(name).ok_or(BackendError::UnknownOutput(output))?;
                let array = value.try_extract_array::<f32>().map_err(run)?;
                Ok((output, array.to_owned()))
            })
            .collect()
    }

    fn execution_provider(&self) -> &str {
        self.execution_provider
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_holds_one_cpu_arena_for_every_session() {
        // scripts/test fetches ONNX Runtime and names it here.
        let Some(library) = std::env::var_os("EXPLAIN_ORT_LIBRARY") else {
            eprintln!("SKIPPED: EXPLAIN_ORT_LIBRARY is not set (scripts/test sets it)");
            return;
        };
        let (_, shared) = environment(&PathBuf::from(library)).expect("ONNX Runtime loads");
        assert!(shared, "the shared CPU arena was not registered");
    }
}
