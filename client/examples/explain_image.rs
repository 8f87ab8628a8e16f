//! Explains one image with the SDK and prints what came back.
//!
//! `cargo run -p explain-client --example explain_image -- IMAGE [ENDPOINT]`

use explain_client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: explain_image IMAGE [ENDPOINT]")?;
    let endpoint = args.next().unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let client = Client::connect(endpoint).await?;
    let last_layer =
        client.model_info().await?.layers.iter().rev().find(|l| l.shape.len() == 4).map(|l| l.name.clone());
    let mut request = client.explain(std::fs::read(&path)?).saliency().integrated_gradients(16).top_k(3);
    if let Some(layer) = &last_layer {
        request = request.grad_cam_upsampled(layer).feature_maps_top_k(layer, 8);
    }
    let explanation = request.send().await?;
    for class in &explanation.prediction.top_classes {
        println!("class {:>4} {:>8.4}  {}", class.index, class.probability, class.label);
    }
    for (name, tensor) in &explanation.tensors {
        let (min, max) =
            tensor.array.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        println!("{name:<45} {:?} in [{min:.3e}, {max:.3e}]", tensor.array.shape());
    }
    if let Some(timings) = &explanation.summary.timings {
        println!("{:.1} ms on {}", timings.total_ms, explanation.summary.execution_provider);
    }
    Ok(())
}
