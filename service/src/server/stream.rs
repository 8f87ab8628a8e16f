//! `ExplainStream`: many images on one bidirectional stream. At most `stream_in_flight` requests
//! of a stream are worked on at once — the next one is not read until a slot frees, so a fast
//! sender is held back by HTTP/2 flow control. Responses carry their request's `request_id`; a
//! request that fails gets its error in band (`google.rpc.Status`) and the stream goes on. When
//! the caller goes away, every request of the stream stops before its next engine run.

use std::{sync::Arc, time::Instant};

use explain_proto::v1 as pb;
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tonic::{Status, Streaming};
use tracing::{Instrument, field::Empty};

use super::{
    service::{self, ApiSettings, STREAM_BUFFER, Wire},
    status::ApiError,
};
use crate::{api::RequestError, explain::Explainer};

type Sender = mpsc::Sender<Result<pb::ExplainStreamResponse, Status>>;

/// Serves `incoming` and returns the receiving end of the response stream.
pub(super) fn serve(
    explainer: Explainer,
    mut incoming: Streaming<pb::ExplainStreamRequest>,
    settings: ApiSettings,
    deadline: Option<Instant>,
) -> mpsc::Receiver<Result<pb::ExplainStreamResponse, Status>> {
    let in_flight = settings.stream_in_flight.max(1);
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER * in_flight);
    let slots = Arc::new(Semaphore::new(in_flight));
    tokio::spawn(
        async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                let next = tokio::select! {
                    next = incoming.message() => next,
                    () = sender.closed() => break,
                };
                let item = match next {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = sender.send(Err(status)).await;
                        break;
                    }
                };
                let (explainer, sender) = (explainer.clone(), sender.clone());
                // A span per request of the stream, inside the call's, for its id and timings.
                let id: String = item.request_id.chars().take(128).collect();
                let span = tracing::info_span!(
                    "stream_request",
                    request_id = %id,
                    preprocess_ms = Empty,
                    queue_ms = Empty,
                    inference_ms = Empty,
                    rows = Empty,
                    batch_size = Empty,
                );
                tokio::spawn(
                    async move {
                        answer(explainer, item, settings, deadline, &sender).await;
                        drop(slot);
                    }
                    .instrument(span),
                );
            }
            // The stream ends once every request's task has dropped its sender.
        }
        .in_current_span(),
    );
    receiver
}

/// Explains one request of the stream and sends its responses, or its error, tagged with its id.
async fn answer(
    explainer: Explainer,
    item: pb::ExplainStreamRequest,
    settings: ApiSettings,
    deadline: Option<Instant>,
    sender: &Sender,
) {
    use pb::explain_stream_response::Result as Outcome;
    let received = Instant::now();
    let request_id = item.request_id;
    let tagged = |outcome| pb::ExplainStreamResponse { request_id: request_id.clone(), result: Some(outcome) };
    let work = async {
        match item.request {
            None => Err(ApiError::Request(RequestError::Invalid {
                field: "request".into(),
                description: "is required: the ExplainRequest to serve".into(),
            })),
            Some(request) => service::explain(&explainer, request, deadline).await,
        }
    };
    // Dropping the work when the caller leaves drops its engine rows: those queued leave the
    // queue unrun, and no further batch of a multi-batch request is sent.
    let outcome = tokio::select! {
        outcome = work => outcome,
        () = sender.closed() => {
            tracing::debug!(request_id, "caller went away; stream request stopped");
            return;
        }
    };
    match outcome {
        Ok((encoding, explanation)) => {
            let wire = Wire { encoding, max_chunk_bytes: settings.max_chunk_bytes, received };
            let wrap = |message: Result<pb::ExplainResponse, Status>| {
                Ok(match message {
                    Ok(response) => tagged(Outcome::Response(response)),
                    Err(status) => tagged(Outcome::Error(rpc_status(&status))),
                })
            };
            service::send_explanation(&explainer, explanation, wire, sender, wrap).await;
        }
        Err(error) => {
            let status = rpc_status(&Status::from(error));
            let _ = sender.send(Ok(tagged(Outcome::Error(status)))).await;
        }
    }
}

/// The `google.rpc.Status` of a gRPC status, details included.
fn rpc_status(status: &Status) -> tonic_types::pb::Status {
    tonic_types::pb::Status::decode(status.details())
        .ok()
        .filter(|decoded| decoded.code == status.code() as i32)
        .unwrap_or_else(|| tonic_types::pb::Status {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: Vec::new(),
        })
}
