//! The `explain.v1.ExplainService` handlers. Each is thin: check readiness, validate the request
//! into a job, delegate to the `Explainer`, stream the result through a bounded channel that stops
//! when the caller goes away.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    time::Instant,
};

use explain_proto::v1::{self as pb, explain_service_server::ExplainService};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use tracing::Instrument;

use super::{deadline, observe, status::ApiError, stream};
use crate::{
    api,
    explain::{Encoding, Explainer, Explanation},
};

/// Messages buffered per response stream before the producer waits for the caller.
pub(super) const STREAM_BUFFER: usize = 4;

/// Whether the model is loaded.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    explainer: OnceLock<Result<Explainer, String>>,
}

impl Readiness {
    /// Records the outcome of loading; the first outcome stays.
    pub(crate) fn set(&self, outcome: Result<Explainer, String>) {
        let _ = self.explainer.set(outcome);
    }

    fn explainer(&self) -> Result<&Explainer, ApiError> {
        match self.explainer.get() {
            None => Err(ApiError::Loading),
            Some(Ok(explainer)) => Ok(explainer),
            Some(Err(error)) => Err(ApiError::LoadFailed(error.clone())),
        }
    }
}

/// Settings of the handlers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ApiSettings {
    /// Largest tensor chunk sent, in bytes.
    pub(crate) max_chunk_bytes: usize,
    /// Requests of one `ExplainStream` worked on at once.
    pub(crate) stream_in_flight: usize,
}

/// The service implementation.
#[derive(Debug)]
pub(crate) struct ExplainApi {
    readiness: Arc<Readiness>,
    settings: ApiSettings,
}

impl ExplainApi {
    /// A service answering once `readiness` holds a loaded model.
    pub(crate) fn new(readiness: Arc<Readiness>, settings: ApiSettings) -> Self {
        Self { readiness, settings }
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl ExplainService for ExplainApi {
    async fn get_model_info(
        &self,
        _request: Request<pb::GetModelInfoRequest>,
    ) -> Result<Response<pb::GetModelInfoResponse>, Status> {
        let explainer = self.readiness.explainer()?;
        Ok(Response::new(api::model_info(explainer.info())))
    }

    async fn classify(&self, request: Request<pb::ClassifyRequest>) -> Result<Response<pb::ClassifyResponse>, Status> {
        let received = Instant::now();
        let deadline = deadline::of(&request);
        let explainer = self.readiness.explainer()?;
        let job = api::classify_job(request.into_inner(), explainer.info()).map_err(ApiError::from)?;
        let (prediction, stats) = explainer.classify(job, deadline).await.map_err(ApiError::from)?;
        let info = explainer.info();
        let summary = api::summary(&stats, &info.execution_provider, 0, received.elapsed());
        observe::record_summary(&summary);
        Ok(Response::new(pb::ClassifyResponse {
            prediction: Some(api::prediction(&prediction, info)),
            summary: Some(summary),
        }))
    }

    type ExplainStream = ResponseStream<pb::ExplainResponse>;

    async fn explain(&self, request: Request<pb::ExplainRequest>) -> Result<Response<Self::ExplainStream>, Status> {
        let received = Instant::now();
        let deadline = deadline::of(&request);
        let explainer = self.readiness.explainer()?.clone();
        let (encoding, explanation) = explain(&explainer, request.into_inner(), deadline).await?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let max_chunk_bytes = self.settings.max_chunk_bytes;
        tokio::spawn(
            async move {
                let wire = Wire { encoding, max_chunk_bytes, received };
                if !send_explanation(&explainer, explanation, wire, &sender, |message| message).await {
                    tracing::debug!("caller went away; explanation stream stopped");
                }
            }
            .in_current_span(),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    type ExplainStreamStream = ResponseStream<pb::ExplainStreamResponse>;

    async fn explain_stream(
        &self,
        request: Request<Streaming<pb::ExplainStreamRequest>>,
    ) -> Result<Response<Self::ExplainStreamStream>, Status> {
        let explainer = self.readiness.explainer()?.clone();
        let deadline = deadline::of(&request);
        let receiver = stream::serve(explainer, request.into_inner(), self.settings, deadline);
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// Validates and runs one explanation; returns the encoding its tensors are sent in.
pub(super) async fn explain(
    explainer: &Explainer,
    request: pb::ExplainRequest,
    deadline: Option<Instant>,
) -> Result<(Encoding, Explanation), ApiError> {
    let job = api::explain_job(request, explainer.info(), explainer.limits())?;
    let encoding = job.encoding;
    Ok((encoding, explainer.explain(job, deadline).await?))
}

/// How an explanation's tensors go on the wire.
#[derive(Clone, Copy, Debug)]
pub(super) struct Wire {
    /// Element type of the tensors.
    pub(super) encoding: Encoding,
    /// Largest chunk.
    pub(super) max_chunk_bytes: usize,
    /// When the call arrived, for the summary's total.
    pub(super) received: Instant,
}

/// Sends the messages of one explanation through `sender`, each wrapped by `wrap`, in stream
/// order: prediction, tensor chunks, pictures, faithfulness scores, summary. Each tensor is encoded on the compute
/// pool once the caller has taken what came before (the channel is bounded); a failure there
/// (a panic, contained) ends the explanation with INTERNAL, never with a silent OK. False if the
/// caller went away.
pub(super) async fn send_explanation<T>(
    explainer: &Explainer,
    explanation: Explanation,
    wire: Wire,
    sender: &mpsc::Sender<Result<T, Status>>,
    wrap: impl Fn(Result<pb::ExplainResponse, Status>) -> Result<T, Status>,
) -> bool {
    use pb::explain_response::Item;
    let send = |item: Item| sender.send(wrap(Ok(pb::ExplainResponse { item: Some(item) })));
    let Explanation { prediction, tensors, pictures, faithfulness, stats } = explanation;
    let count = tensors.len();
    if send(Item::Prediction(api::prediction(&prediction, explainer.info()))).await.is_err() {
        return false;
    }
    let Wire { encoding, max_chunk_bytes, received } = wire;
    for tensor in tensors {
        let chunks =
            explainer.offload("encoding a tensor", move || api::tensor_chunks(tensor, encoding, max_chunk_bytes));
        match chunks.await {
            Ok(chunks) => {
                for chunk in chunks {
                    if send(Item::TensorChunk(chunk)).await.is_err() {
                        return false;
                    }
                }
            }
            Err(error) => return sender.send(wrap(Err(Status::from(ApiError::from(error))))).await.is_ok(),
        }
    }
    for picture in pictures {
        let picture = pb::RenderedImage {
            name: picture.name,
            png: picture.png.into(),
            width: picture.width,
            height: picture.height,
        };
        if send(Item::RenderedImage(picture)).await.is_err() {
            return false;
        }
    }
    for scores in &faithfulness {
        if send(Item::Faithfulness(api::faithfulness(scores))).await.is_err() {
            return false;
        }
    }
    let summary = api::summary(&stats, &explainer.info().execution_provider, count, received.elapsed());
    observe::record_summary(&summary);
    send(Item::Summary(summary)).await.is_ok()
}
