//! Scale-out under faults, as on Kubernetes behind a headless Service: three `explaind` processes
//! on 127.0.0.2, 127.0.0.3 and 127.0.0.4 (one port), the SDK balancing over them through its
//! resolver, many callers. Once every replica has served, one gets SIGTERM (it drains) and then
//! another SIGKILL; each leaves the resolver's answers as it would leave a Service's endpoints.
//! No call may fail, and the survivor must take the load.

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    process::{Child, Command},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use explain_client::{Client, Resolver, RetryPolicy, proto};
use explain_tests::{encoded_image, explaind, http_get, sample_png, until_serving};

const REPLICAS: [[u8; 4]; 3] = [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]];
const CALLERS: usize = 12;

/// A resolver whose answers the test changes, as endpoints change behind a headless Service.
#[derive(Clone, Default)]
struct Endpoints(Arc<Mutex<Vec<IpAddr>>>);

impl Resolver for Endpoints {
    fn resolve<'a>(
        &'a self,
        _host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        let addresses = self.0.lock().expect("endpoints").iter().map(|&ip| SocketAddr::new(ip, port)).collect();
        Box::pin(std::future::ready(Ok(addresses)))
    }
}

/// A free port on every replica address.
fn free_port() -> u16 {
    for _ in 0..20 {
        let probe = std::net::TcpListener::bind(SocketAddr::from((REPLICAS[0], 0))).expect("bind 127.0.0.2");
        let port = probe.local_addr().expect("address").port();
        drop(probe);
        if REPLICAS.iter().all(|&ip| std::net::TcpListener::bind(SocketAddr::from((ip, port))).is_ok()) {
            return port;
        }
    }
    panic!("no port free on all of {REPLICAS:?}");
}

struct Replica {
    ip: IpAddr,
    child: Child,
    metrics: SocketAddr,
}

impl Replica {
    fn start(ip: [u8; 4], port: u16, metrics_port: u16) -> Self {
        let metrics = SocketAddr::from((ip, metrics_port));
        let child = explaind(env!("CARGO_BIN_EXE_explaind-under-test"))
            .arg("serve")
            .arg("--listen")
            .arg(SocketAddr::from((ip, port)).to_string())
            .arg("--metrics-listen")
            .arg(metrics.to_string())
            .env("EXPLAIN_COMPUTE_THREADS", "1")
            .env("EXPLAIN_DRAIN_DELAY_SECS", "1")
            .env("EXPLAIN_SHUTDOWN_GRACE_SECS", "20")
            .spawn()
            .expect("explaind starts");
        Self { ip: IpAddr::from(ip), child, metrics }
    }

    /// Calls this replica answered OK, from its own metrics.
    async fn served(&self) -> f64 {
        let (_, body) = http_get(self.metrics, "/metrics").await;
        body.lines()
            .filter(|line| line.starts_with("explain_calls_total{") && line.contains("ExplainService/Classify"))
            .filter(|line| line.contains(r#"code="OK""#))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `condition` holds, for at most `limit`.
async fn until(what: &str, limit: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_going_away_lose_no_call() {
    let port = free_port();
    // A probe's port is free again once dropped, so the second pick may repeat the first.
    let metrics_port = (0..20).map(|_| free_port()).find(|&other| other != port).expect("a second free port");
    let mut replicas: Vec<Replica> = REPLICAS.iter().map(|&ip| Replica::start(ip, port, metrics_port)).collect();
    for replica in &replicas {
        until_serving(&SocketAddr::new(replica.ip, port).to_string()).await;
    }
    let endpoints = Endpoints::default();
    *endpoints.0.lock().expect("endpoints") = replicas.iter().map(|replica| replica.ip).collect();
    let client = Client::builder(format!("http://replicas.explain.test:{port}"))
        .resolver(endpoints.clone())
        .balance_dns(Duration::from_millis(200))
        // Enough attempts to outlast a re-resolution: with full jitter the default four can all
        // fall within the 200 ms before a killed replica leaves the endpoints (seen on a loaded
        // machine: one call UNAVAILABLE "tcp connect error" after every attempt).
        .retry(RetryPolicy { max_attempts: 10, ..RetryPolicy::default() })
        .timeout(Duration::from_secs(20))
        .build()
        .await
        .expect("client");

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (client, stop, answered, failures) = (client.clone(), stop.clone(), answered.clone(), failures.clone());
            tokio::spawn(async move {
                let image = encoded_image(sample_png(48 + caller as u32));
                // Bounded in count as well as by the stop flag.
                for _ in 0..20_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let request = proto::ClassifyRequest { image: Some(image.clone()), ..Default::default() };
                    match client.classify(request).await {
                        Ok(_) => answered.fetch_add(1, Ordering::SeqCst),
                        Err(error) => {
                            failures.lock().expect("failures").push(error.to_string());
                            0
                        }
                    };
                }
            })
        })
        .collect();

    // Every replica serves before the faults.
    until("every replica to serve", Duration::from_secs(30), async || {
        for replica in &replicas {
            if replica.served().await < 20.0 {
                return false;
            }
        }
        true
    })
    .await;

    // SIGTERM: the replica drains; it leaves the endpoints as Kubernetes removes a terminating pod.
    let terminated = replicas.remove(0);
    let status = Command::new("kill").arg("-TERM").arg(terminated.child.id().to_string()).status().expect("kill");
    assert!(status.success());
    endpoints.0.lock().expect("endpoints").retain(|&ip| ip != terminated.ip);
    let before_kill = answered.load(Ordering::SeqCst);
    until("calls after the SIGTERM", Duration::from_secs(30), async || {
        answered.load(Ordering::SeqCst) > before_kill + 200
    })
    .await;

    // SIGKILL: gone at once, in the middle of its calls.
    let mut killed = replicas.remove(0);
    killed.child.kill().expect("SIGKILL");
    killed.child.wait().expect("reaped");
    endpoints.0.lock().expect("endpoints").retain(|&ip| ip != killed.ip);
    let survivor = &replicas[0];
    let survivor_before = survivor.served().await;
    let after_kill = answered.load(Ordering::SeqCst);
    until("the survivor to take the load", Duration::from_secs(30), async || {
        answered.load(Ordering::SeqCst) > after_kill + 200
    })
    .await;

    stop.store(true, Ordering::SeqCst);
    for caller in callers {
        caller.await.expect("caller");
    }
    let mut terminated = terminated;
    let exit = terminated.child.wait().expect("the terminated replica exits");
    assert!(exit.success(), "the SIGTERM'd replica should drain and exit 0: {exit:?}");

    let failures = failures.lock().expect("failures").clone();
    let mut by_message: HashMap<String, usize> = HashMap::new();
    for failure in &failures {
        *by_message.entry(failure.clone()).or_default() += 1;
    }
    assert!(failures.is_empty(), "{} calls lost: {by_message:?}", failures.len());
    assert!(survivor.served().await > survivor_before + 150.0, "the survivor did not take over");
    eprintln!("answered {} calls, none lost", answered.load(Ordering::SeqCst));
}
