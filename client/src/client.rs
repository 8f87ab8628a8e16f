//! The client: calls with the builder's deadline, bearer token, compression and retries, and
//! explanations reassembled from their response streams.

use std::{collections::BTreeMap, future::Future, time::Duration};

use explain_proto::v1::explain_service_client::ExplainServiceClient;
use tonic::{Request, Status, codec::CompressionEncoding, metadata::MetadataValue, transport::Channel};

use crate::{Assembler, Error, ExplainBuilder, ImageInput, builder::ClientBuilder, proto, retry::RetryPolicy};

/// Per-call settings from the builder.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) timeout: Option<Duration>,
    pub(crate) bearer_token: Option<String>,
    pub(crate) compression: Option<CompressionEncoding>,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_message_bytes: usize,
}

/// A whole explanation, reassembled from the response stream.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The prediction (first message).
    pub prediction: proto::Prediction,
    /// Tensors by name, decoded to f32.
    pub tensors: BTreeMap<String, crate::ReceivedTensor>,
    /// Rendered PNGs by name.
    pub images: BTreeMap<String, proto::RenderedImage>,
    /// How faithful each attribution map is, by its tensor name, when the request asked
    /// ([`ExplainBuilder::faithfulness`](crate::ExplainBuilder::faithfulness)).
    pub faithfulness: BTreeMap<String, proto::Faithfulness>,
    /// The summary (last message).
    pub summary: proto::Summary,
}

/// An explanation being received: each message is taken as it arrives, so tensors are decoded
/// while the rest of the stream is still on its way.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    prediction: Option<proto::Prediction>,
    tensors: Assembler,
    images: BTreeMap<String, proto::RenderedImage>,
    faithfulness: BTreeMap<String, proto::Faithfulness>,
    summary: Option<proto::Summary>,
}

impl Collector {
    /// Takes the next message of the stream.
    pub(crate) fn add(&mut self, message: proto::ExplainResponse) -> Result<(), Error> {
        use proto::explain_response::Item;
        match message.item {
            Some(Item::Prediction(prediction)) => self.prediction = Some(prediction),
            Some(Item::TensorChunk(chunk)) => self.tensors.push(chunk)?,
            Some(Item::RenderedImage(image)) => {
                self.images.insert(image.name.clone(), image);
            }
            Some(Item::Faithfulness(scores)) => {
                self.faithfulness.insert(scores.attribution.clone(), scores);
            }
            Some(Item::Summary(summary)) => self.summary = Some(summary),
            None => return Err(Error::Assembly("an empty message in the stream".into())),
        }
        Ok(())
    }

    /// The explanation, once the stream has ended.
    pub(crate) fn finish(self) -> Result<Explanation, Error> {
        Ok(Explanation {
            prediction: self.prediction.ok_or_else(|| Error::Assembly("no prediction in the stream".into()))?,
            tensors: self.tensors.finish()?,
            images: self.images,
            faithfulness: self.faithfulness,
            summary: self.summary.ok_or_else(|| Error::Assembly("the stream ended without a summary".into()))?,
        })
    }
}

/// A connection to the explain service (one server, or several balanced); cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), explain_client::Error> {
/// use std::time::Duration;
/// use explain_client::{Client, Compression};
///
/// let client = Client::builder("http://explain.default.svc.cluster.local:50051")
///     .balance_dns(Duration::from_secs(30))
///     .timeout(Duration::from_secs(10))
///     .compression(Compression::Zstd)
///     .build()
///     .await?;
/// let png = std::fs::read("cat.png")?;
/// let explanation = client.explain(png).saliency().grad_cam("layer4.1").feature_maps("layer2.1").send().await?;
/// println!("{:?}", explanation.tensors["attribution/grad_cam/layer4.1"].array.shape());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: ExplainServiceClient<Channel>,
    pub(crate) settings: Settings,
}

impl Client {
    /// Starts building a client of `endpoint`, e.g. `http://127.0.0.1:50051`.
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint.into())
    }

    /// Connects to `endpoint` with the default settings.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        Self::builder(endpoint).build().await
    }

    pub(crate) fn from_parts(channel: Channel, settings: Settings) -> Self {
        let mut inner = ExplainServiceClient::new(channel).max_decoding_message_size(settings.max_message_bytes);
        if let Some(encoding) = settings.compression {
            inner = inner.send_compressed(encoding).accept_compressed(encoding);
        }
        Self { inner, settings }
    }

    /// The generated client, for calls this wrapper does not cover.
    pub fn raw(&mut self) -> &mut ExplainServiceClient<Channel> {
        &mut self.inner
    }

    /// `message` as a request with the deadline and bearer token.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(timeout) = self.settings.timeout {
            request.set_timeout(timeout);
        }
        if let Some(token) = &self.settings.bearer_token
            && let Ok(value) = MetadataValue::try_from(format!("Bearer {token}"))
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Runs `call` with the retry policy: UNAVAILABLE, RESOURCE_EXHAUSTED and broken connections
    /// are retried after the server's pushback or an exponential, jittered backoff.
    pub(crate) async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut(ExplainServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut attempt = 1;
        loop {
            match call(self.inner.clone()).await {
                Ok(value) => return Ok(value),
                Err(status) => match self.settings.retry.delay(attempt, &status) {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => return Err(status.into()),
                },
            }
        }
    }

    /// Describes the served model.
    pub async fn model_info(&self) -> Result<proto::GetModelInfoResponse, Error> {
        self.with_retries(|mut inner| async move {
            Ok(inner.get_model_info(self.request(proto::GetModelInfoRequest {})).await?.into_inner())
        })
        .await
    }

    /// Classifies one image.
    pub async fn classify(&self, request: proto::ClassifyRequest) -> Result<proto::ClassifyResponse, Error> {
        self.with_retries(|mut inner| {
            let request = self.request(request.clone());
            async move { Ok(inner.classify(request).await?.into_inner()) }
        })
        .await
    }

    /// Starts an explanation of `image` (encoded bytes, a path's contents, or a preprocessed
    /// `[1, 3, H, W]` tensor); add methods and layers, then [`ExplainBuilder::send`].
    pub fn explain(&self, image: impl Into<ImageInput>) -> ExplainBuilder {
        ExplainBuilder::new(self.clone(), image.into())
    }

    /// Sends a whole `ExplainRequest` and reassembles the response as it arrives.
    pub async fn send(&self, request: proto::ExplainRequest) -> Result<Explanation, Error> {
        self.with_retries(|mut inner| {
            let request = self.request(request.clone());
            async move {
                let mut stream = inner.explain(request).await?.into_inner();
                let mut collector = Collector::default();
                while let Some(message) = stream.message().await? {
                    // A malformed stream is not retried: it is the answer, and it is wrong.
                    if let Err(error) = collector.add(message) {
                        return Ok(Err(error));
                    }
                }
                Ok(collector.finish())
            }
        })
        .await?
    }
}
