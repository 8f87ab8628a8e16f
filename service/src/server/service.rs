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

use super::{deadline, status::ApiError, stream};
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
        Ok(Response::new(pb::ClassifyResponse {
            prediction: Some(api::prediction(&prediction, info)),
            summary: Some(api::summary(&stats, &info.execution_provider, 0, received.elapsed())),
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
        tokio::spawn(async move {
            let messages = responses(explainer, explanation, encoding, max_chunk_bytes, received);
            for message in contained(messages) {
                if sender.send(message).await.is_err() {
                    tracing::debug!("caller went away; explanation stream stopped");
                    return;
                }
            }
        });
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

/// `messages`, ending with an INTERNAL error instead of unwinding if producing one panics, so a
/// stream is never cut short with an OK status.
pub(super) fn contained<T>(messages: impl Iterator<Item = T>) -> impl Iterator<Item = Result<T, Status>> {
    let mut messages = Some(messages);
    std::iter::from_fn(move || {
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| messages.as_mut()?.next()));
        match next {
            Ok(message) => message.map(Ok),
            Err(_) => {
                messages = None;
                tracing::error!("producing a response panicked; the stream ends with INTERNAL");
                Some(Err(Status::internal("the server failed while sending the explanation; see its log")))
            }
        }
    })
}

/// The messages of one explanation, in stream order: prediction, tensor chunks, pictures, summary.
/// Tensors are encoded lazily, one at a time, as the caller reads.
pub(super) fn responses(
    explainer: Explainer,
    explanation: Explanation,
    encoding: Encoding,
    max_chunk_bytes: usize,
    received: Instant,
) -> impl Iterator<Item = pb::ExplainResponse> + Send + use<> {
    use pb::explain_response::Item;
    let Explanation { prediction, tensors, pictures, stats } = explanation;
    let count = tensors.len();
    let prediction = std::iter::once(Item::Prediction(api::prediction(&prediction, explainer.info())));
    let chunks = tensors.into_iter().flat_map(move |tensor| {
        api::tensor_chunks(&tensor, encoding, max_chunk_bytes).into_iter().map(Item::TensorChunk)
    });
    let pictures = pictures.into_iter().map(|picture| {
        Item::RenderedImage(pb::RenderedImage {
            name: picture.name,
            png: picture.png.into(),
            width: picture.width,
            height: picture.height,
        })
    });
    let summary = std::iter::once_with(move || {
        Item::Summary(api::summary(&stats, &explainer.info().execution_provider, count, received.elapsed()))
    });
    prediction.chain(chunks).chain(pictures).chain(summary).map(|item| pb::ExplainResponse { item: Some(item) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_producing_ends_the_stream_with_internal() {
        let messages = (1..=3).map(|i| if i == 2 { panic!("a bug while encoding") } else { i });
        let produced: Vec<_> = contained(messages).collect();
        assert_eq!(produced.len(), 2, "{produced:?}");
        assert_eq!(produced[0].as_ref().ok(), Some(&1));
        assert_eq!(produced[1].as_ref().map_err(Status::code).err(), Some(tonic::Code::Internal));
    }
}
