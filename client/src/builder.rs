//! Building a [`Client`]: one endpoint, a list balanced on the client side, or a DNS name whose
//! addresses are balanced (a Kubernetes headless Service); timeouts, TLS (custom CA, client
//! certificate), a bearer token, compression and the retry policy.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tonic::{
    codec::CompressionEncoding,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri},
};

use crate::{
    Client, Error,
    discovery::{Discovery, Resolver, SystemResolver},
    retry::RetryPolicy,
};

/// Message compression on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    fn encoding(self) -> CompressionEncoding {
        match self {
            Self::Gzip => CompressionEncoding::Gzip,
            Self::Zstd => CompressionEncoding::Zstd,
        }
    }
}

/// TLS settings.
#[derive(Clone, Debug, Default)]
struct Tls {
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    domain: Option<String>,
}

/// Where the servers are.
#[derive(Clone, Debug)]
enum Targets {
    /// Fixed endpoints (one, or several balanced).
    List(Vec<String>),
    /// One DNS name whose every address is a server, re-resolved periodically.
    Dns { url: String, refresh: Duration },
}

/// Builder of a [`Client`]; see [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    targets: Targets,
    resolver: Arc<dyn Resolver>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    tls: Option<Tls>,
    bearer_token: Option<String>,
    compression: Option<Compression>,
    retry: RetryPolicy,
    max_message_bytes: usize,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("targets", &self.targets)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .field("compression", &self.compression)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    pub(crate) fn new(endpoint: String) -> Self {
        Self {
            targets: Targets::List(vec![endpoint]),
            resolver: Arc::new(SystemResolver),
            timeout: None,
            connect_timeout: Duration::from_secs(5),
            tls: None,
            bearer_token: None,
            compression: None,
            retry: RetryPolicy::default(),
            max_message_bytes: 64 << 20,
        }
    }

    /// Adds another server; calls are balanced across all of them.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        match &mut self.targets {
            Targets::List(list) => list.push(endpoint.into()),
            Targets::Dns { .. } => self.targets = Targets::List(vec![endpoint.into()]),
        }
        self
    }

    /// Treats the endpoint's host as a DNS name with one address per server (a Kubernetes headless
    /// Service) and balances across them, re-resolving every `refresh`.
    pub fn balance_dns(mut self, refresh: Duration) -> Self {
        let url = match &self.targets {
            Targets::List(list) => list.first().cloned().unwrap_or_default(),
            Targets::Dns { url, .. } => url.clone(),
        };
        self.targets = Targets::Dns { url, refresh };
        self
    }

    /// The resolver of [`ClientBuilder::balance_dns`] (the system's by default).
    pub fn resolver(mut self, resolver: impl Resolver) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Deadline of each call (sent as `grpc-timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long connecting may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Uses TLS, trusting the certificate authority in `pem` (and the system's roots are not
    /// consulted). Endpoints must be `https://`.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(Tls::default).ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM) for mutual TLS.
    pub fn client_identity(mut self, certificate_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(Tls::default).identity = Some((certificate_pem.into(), key_pem.into()));
        self
    }

    /// The server name TLS verifies (default: the endpoint's host).
    pub fn tls_domain(mut self, domain: impl Into<String>) -> Self {
        self.tls.get_or_insert_with(Tls::default).domain = Some(domain.into());
        self
    }

    /// Sends `authorization: Bearer <token>` with every call.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Compresses requests and asks for compressed responses.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// How failed calls are retried ([`RetryPolicy::none`] to disable).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Largest response message accepted (default 64 MiB).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// An endpoint with this builder's settings, TLS verifying `domain`.
    fn endpoint_for(&self, url: String, domain: Option<&str>) -> Result<Endpoint, Error> {
        let mut endpoint =
            Endpoint::from_shared(url.clone()).map_err(|e| Error::Config(format!("endpoint `{url}`: {e}")))?;
        endpoint = endpoint.connect_timeout(self.connect_timeout).tcp_nodelay(true);
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        if let Some(tls) = &self.tls {
            let mut config = ClientTlsConfig::new();
            if let Some(ca) = &tls.ca_pem {
                config = config.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((certificate, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(certificate, key));
            }
            if let Some(domain) = tls.domain.as_deref().or(domain) {
                config = config.domain_name(domain);
            }
            endpoint = endpoint.tls_config(config).map_err(|e| Error::Config(format!("TLS for `{url}`: {e}")))?;
        }
        Ok(endpoint)
    }

    /// Connects. With one endpoint the connection is made now, so an unreachable server fails
    /// here; with several, or a DNS name, connections are made as calls need them.
    pub async fn build(self) -> Result<Client, Error> {
        let channel = match &self.targets {
            Targets::List(list) if list.len() == 1 => self.endpoint_for(list[0].clone(), None)?.connect().await?,
            Targets::List(list) => {
                let endpoints =
                    list.iter().map(|url| self.endpoint_for(url.clone(), None)).collect::<Result<Vec<_>, _>>()?;
                Channel::balance_list(endpoints.into_iter())
            }
            Targets::Dns { url, refresh } => self.dns_channel(url, *refresh).await?,
        };
        Ok(Client::from_parts(channel, self.settings()))
    }

    async fn dns_channel(&self, url: &str, refresh: Duration) -> Result<Channel, Error> {
        let uri: Uri = url.parse().map_err(|e| Error::Config(format!("endpoint `{url}`: {e}")))?;
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let host = uri.host().ok_or_else(|| Error::Config(format!("endpoint `{url}` has no host")))?.to_owned();
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let builder = self.clone();
        let domain = host.clone();
        let make_endpoint: crate::discovery::MakeEndpoint =
            Arc::new(move |address: SocketAddr| builder.endpoint_for(format!("{scheme}://{address}"), Some(&domain)));
        let (channel, changes) = Channel::balance_channel(16);
        let discovery = Discovery { resolver: self.resolver.clone(), host, port, refresh, make_endpoint };
        discovery.start(changes).await.map_err(|e| Error::Config(format!("cannot resolve `{url}`: {e}")))?;
        Ok(channel)
    }

    fn settings(&self) -> crate::client::Settings {
        crate::client::Settings {
            timeout: self.timeout,
            bearer_token: self.bearer_token.clone(),
            compression: self.compression.map(Compression::encoding),
            retry: self.retry,
            max_message_bytes: self.max_message_bytes,
        }
    }
}
