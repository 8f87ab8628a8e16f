//! The server's lifecycle as `grpc.health.v1` reports it: loading → serving → draining, in that
//! order only. SERVING is published only after the handlers can serve, and never again once
//! draining has begun (a model that finishes loading mid-drain leaves health NOT_SERVING).

use tokio::sync::Mutex;
use tonic_health::{ServingStatus, server::HealthReporter};

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Loading,
    Serving,
    /// Shutting down, or unable to serve; final.
    Stopped,
}

/// The one owner of the health status: every change goes through it, in order.
#[derive(Debug)]
pub(super) struct Lifecycle {
    health: HealthReporter,
    phase: Mutex<Phase>,
}

impl Lifecycle {
    /// A lifecycle that starts loading, health NOT_SERVING.
    pub(super) async fn new(health: HealthReporter) -> Self {
        let lifecycle = Self { health, phase: Mutex::new(Phase::Loading) };
        lifecycle.publish(ServingStatus::NotServing).await;
        lifecycle
    }

    /// Publishes SERVING if the server is still loading; false (health unchanged) once it is
    /// stopping. Call it only after the handlers can serve.
    pub(super) async fn serving(&self) -> bool {
        let mut phase = self.phase.lock().await;
        if *phase != Phase::Loading {
            return false;
        }
        *phase = Phase::Serving;
        self.publish(ServingStatus::Serving).await;
        true
    }

    /// Publishes NOT_SERVING for good: shutdown has begun or the server cannot serve.
    pub(super) async fn stopped(&self) {
        let mut phase = self.phase.lock().await;
        *phase = Phase::Stopped;
        self.publish(ServingStatus::NotServing).await;
    }

    async fn publish(&self, status: ServingStatus) {
        self.health.set_service_status("", status).await;
        self.health.set_service_status(explain_proto::SERVICE_NAME, status).await;
    }
}
