//! The network tax: what a call costs beyond the server's own time. A prediction-only `Explain`
//! on the tiny test model must cost the caller only a few milliseconds more than the server's
//! `Summary.timings.total_ms`; Nagle's algorithm meeting delayed ACKs (`TCP_NODELAY` missing on
//! accepted sockets) made it ~30 ms.

use std::time::Instant;

use explain_client::proto;
use explain_tests::{TestServer, encoded_image, sample_png, tiny_model};

/// Largest median overhead accepted, in milliseconds: well above loopback's cost on a busy
/// 2-core machine, well below the ~30 ms of a delayed ACK.
const MAX_MEDIAN_OVERHEAD_MS: f64 = 5.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prediction_only_call_costs_only_milliseconds_beyond_the_servers_own_time() {
    let server = TestServer::with_model(tiny_model()).await;
    let request = proto::ExplainRequest { image: Some(encoded_image(sample_png(64))), ..Default::default() };
    let mut overheads = Vec::new();
    for call in 0..45 {
        let sent = Instant::now();
        let explanation = server.client.send(request.clone()).await.expect("explain");
        let wall_ms = sent.elapsed().as_secs_f64() * 1e3;
        let server_ms = explanation.summary.timings.expect("timings").total_ms;
        if call >= 5 {
            overheads.push(wall_ms - server_ms);
        }
    }
    overheads.sort_by(f64::total_cmp);
    let median = overheads[overheads.len() / 2];
    assert!(
        median <= MAX_MEDIAN_OVERHEAD_MS,
        "median overhead {median:.2} ms beyond the server's total (> {MAX_MEDIAN_OVERHEAD_MS} ms); all: {overheads:.1?}"
    );
}
