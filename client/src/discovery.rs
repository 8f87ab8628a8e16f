//! Client-side balancing over the pods behind one DNS name (a Kubernetes headless Service): the
//! name is resolved at start and every `refresh`, and the balanced channel's endpoints follow the
//! answers. Resolution sits behind [`Resolver`], so tests can use a fake one.

use std::{collections::BTreeSet, future::Future, io, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use tokio::sync::mpsc::Sender;
use tonic::transport::{Endpoint, channel::Change};

/// Resolves host names to socket addresses.
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host` at `port`.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The system resolver (`getaddrinfo`, through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Builds the endpoint of one resolved address.
pub(crate) type MakeEndpoint = Arc<dyn Fn(SocketAddr) -> Result<Endpoint, crate::Error> + Send + Sync>;

/// What to keep in sync.
pub(crate) struct Discovery {
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) refresh: Duration,
    pub(crate) make_endpoint: MakeEndpoint,
}

impl Discovery {
    /// Resolves once (an error or no address fails), inserts the endpoints, then keeps them in
    /// sync in the background until the channel is dropped.
    pub(crate) async fn start(self, changes: Sender<Change<SocketAddr, Endpoint>>) -> io::Result<()> {
        let mut current = BTreeSet::new();
        let first = self.resolver.resolve(&self.host, self.port).await?;
        if first.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("`{}` resolves to no address", self.host)));
        }
        self.apply(&mut current, first, &changes).await;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(self.refresh).await;
                if changes.is_closed() {
                    return;
                }
                match self.resolver.resolve(&self.host, self.port).await {
                    // An empty or failed answer keeps the last known pods rather than none.
                    Ok(addresses) if !addresses.is_empty() => self.apply(&mut current, addresses, &changes).await,
                    Ok(_) | Err(_) => {}
                }
            }
        });
        Ok(())
    }

    /// Inserts new addresses and removes vanished ones.
    async fn apply(
        &self,
        current: &mut BTreeSet<SocketAddr>,
        addresses: Vec<SocketAddr>,
        changes: &Sender<Change<SocketAddr, Endpoint>>,
    ) {
        let next: BTreeSet<SocketAddr> = addresses.into_iter().collect();
        for gone in current.difference(&next) {
            let _ = changes.send(Change::Remove(*gone)).await;
        }
        for new in next.difference(current) {
            if let Ok(endpoint) = (self.make_endpoint)(*new) {
                let _ = changes.send(Change::Insert(*new, endpoint)).await;
            }
        }
        *current = next;
    }
}
