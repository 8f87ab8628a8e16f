//! Many images over one `ExplainStream` call, at most `in_flight` outstanding: the next request is
//! sent when a result completes. Results arrive as they finish, with their request's index. A
//! request refused in band for lack of room (RESOURCE_EXHAUSTED) while others of the stream are
//! running is sent again when one of them completes; otherwise a request refused with a retryable
//! status is sent again after the client's retry policy's delay. Either way it keeps its slot.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use crate::{Client, Error, Explanation, RetryPolicy, client::Collector, proto};

/// One finished request of [`Client::explain_many`]: its index and its result.
pub type Completed = (usize, Result<Explanation, Error>);

impl Client {
    /// Explains every request over one bidirectional stream, keeping at most `in_flight` of them
    /// outstanding. Each answer's tensors are decoded as they arrive. A request that fails yields
    /// its error (an answer that does not assemble: [`Error::Assembly`]); the others go on. One
    /// refused for lack of room (RESOURCE_EXHAUSTED) while others of the stream run is sent again
    /// when one of them completes; else a retryable refusal is retried as the client's
    /// [`RetryPolicy`] says, honouring the server's retry delay ([`RetryPolicy::none`] turns both
    /// off).
    pub fn explain_many(&self, requests: Vec<proto::ExplainRequest>, in_flight: usize) -> ReceiverStream<Completed> {
        let in_flight = in_flight.max(1);
        let (results, receiver) = mpsc::channel(in_flight);
        let client = self.clone();
        tokio::spawn(async move { client.drive(requests, in_flight, results).await });
        ReceiverStream::new(receiver)
    }

    async fn drive(self, requests: Vec<proto::ExplainRequest>, in_flight: usize, results: mpsc::Sender<Completed>) {
        let total = requests.len();
        let requests = Arc::new(requests);
        let slots = Arc::new(Semaphore::new(in_flight));
        let (outgoing, outgoing_stream) = mpsc::channel(in_flight);
        let mut answers = Answers {
            requests: requests.clone(),
            in_flight,
            retry: self.settings.retry,
            retries: (total > 0).then(|| outgoing.clone()),
            attempts: vec![1; total],
            parked: VecDeque::new(),
            pending: HashMap::new(),
            progress: Progress { done: vec![false; total], left: total, slots: slots.clone() },
        };
        tokio::spawn(async move {
            for index in 0..total {
                let Ok(slot) = slots.acquire().await else { return };
                slot.forget();
                if outgoing.send(item(&requests, index)).await.is_err() {
                    return;
                }
            }
        });
        let mut inner = self.inner.clone();
        let failure = match inner.explain_stream(self.request(ReceiverStream::new(outgoing_stream))).await {
            Err(status) => Some(status),
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                        Ok(Some(message)) => {
                            let Some(completed) = answers.take(message) else { continue };
                            if results.send(completed).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        };
        // Whatever did not complete fails with the stream's error, or as cut short.
        for index in 0..total {
            if answers.progress.done[index] {
                continue;
            }
            let status =
                failure.clone().unwrap_or_else(|| Status::aborted("the stream ended before this request completed"));
            if let Some(completed) = answers.progress.finish(index, Err(Error::Status(status)))
                && results.send(completed).await.is_err()
            {
                return;
            }
        }
    }
}

/// The message of the stream that sends request `index` (again).
fn item(requests: &[proto::ExplainRequest], index: usize) -> proto::ExplainStreamRequest {
    proto::ExplainStreamRequest { request_id: index.to_string(), request: Some(requests[index].clone()) }
}

/// What the answers of one `explain_many` stream have done so far.
struct Answers {
    requests: Arc<Vec<proto::ExplainRequest>>,
    in_flight: usize,
    retry: RetryPolicy,
    /// Sends requests again; kept until every request has completed, then dropped to end the
    /// request stream, and the call.
    retries: Option<mpsc::Sender<proto::ExplainStreamRequest>>,
    /// Attempts of each request so far.
    attempts: Vec<u32>,
    /// Refused for lack of room while others of this stream were running: sent again, one per
    /// completion, since each completion frees the room it held.
    parked: VecDeque<usize>,
    /// Each outstanding request's explanation, decoded as its messages arrive.
    pending: HashMap<usize, Collector>,
    progress: Progress,
}

impl Answers {
    /// Takes one message of the response stream; returns the request it completes, if any.
    fn take(&mut self, message: proto::ExplainStreamResponse) -> Option<Completed> {
        let index = message.request_id.parse::<usize>().ok().filter(|&i| i < self.requests.len())?;
        if self.progress.done[index] {
            // The rest of a request that already failed to assemble: neither decoded nor retried.
            return None;
        }
        let completed = match message.result? {
            proto::explain_stream_response::Result::Response(response) => self.response(index, response)?,
            proto::explain_stream_response::Result::Error(error) => self.refusal(index, status_of(error))?,
        };
        if let (Some(next), Some(sender)) = (self.parked.pop_front(), &self.retries) {
            send_later(sender, item(&self.requests, next), Duration::ZERO);
        }
        if self.progress.left == 0 {
            self.retries = None;
        }
        Some(completed)
    }

    /// A message of request `index`'s explanation; the last one completes it.
    fn response(&mut self, index: usize, response: proto::ExplainResponse) -> Option<Completed> {
        let last = matches!(response.item, Some(proto::explain_response::Item::Summary(_)));
        match self.pending.entry(index).or_default().add(response) {
            Ok(()) if !last => None,
            added => {
                let collector = self.pending.remove(&index).unwrap_or_default();
                self.progress.finish(index, added.and_then(|()| collector.finish()))
            }
        }
    }

    /// Request `index` refused in band: parked, sent again later, or failed.
    fn refusal(&mut self, index: usize, status: Status) -> Option<Completed> {
        self.pending.remove(&index);
        let running = self.in_flight - self.progress.slots.available_permits();
        let others = running.saturating_sub(1 + self.parked.len());
        let retrying = self.retry.max_attempts > 1 && self.retries.is_some();
        if status.code() == Code::ResourceExhausted && others > 0 && retrying {
            self.parked.push_back(index);
            return None;
        }
        let delay = self.retry.delay(self.attempts[index], &status);
        if let (Some(delay), Some(sender)) = (delay, &self.retries) {
            self.attempts[index] += 1;
            send_later(sender, item(&self.requests, index), delay);
            return None;
        }
        self.progress.finish(index, Err(Error::Status(status)))
    }
}

/// Sends `request` on the stream again after `delay`, without holding up the reading of answers
/// (the request channel may be full until the server reads on).
fn send_later(
    sender: &mpsc::Sender<proto::ExplainStreamRequest>,
    request: proto::ExplainStreamRequest,
    delay: Duration,
) {
    let sender = sender.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = sender.send(request).await;
    });
}

/// Which requests have completed; completing one frees an in-flight slot.
struct Progress {
    done: Vec<bool>,
    left: usize,
    slots: Arc<Semaphore>,
}

impl Progress {
    /// Marks request `index` complete and frees its slot; `None` if it already was, so a
    /// server that answers a request twice cannot free its slot twice.
    fn finish(&mut self, index: usize, result: Result<Explanation, Error>) -> Option<Completed> {
        if std::mem::replace(&mut self.done[index], true) {
            return None;
        }
        self.slots.add_permits(1);
        self.left -= 1;
        Some((index, result))
    }
}

/// The gRPC status of an in-band `google.rpc.Status`, details kept.
fn status_of(error: tonic_types::pb::Status) -> Status {
    let details = error.encode_to_vec();
    Status::with_details(Code::from(error.code), error.message, details.into())
}
