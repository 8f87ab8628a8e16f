//! Model loading and augmentation: any bytes read as an ONNX model give a model and its graphs,
//! or an error naming what is wrong — never a panic. Shapes come from the seed models' measured
//! shapes (`seeds/shapes.json`, by tensor name), so mutated seeds reach the augmenter's rules.
#![no_main]

use std::{collections::HashMap, sync::OnceLock};

use explain_service::{
    augment::{Backward, Shapes},
    model::Model,
};
use libfuzzer_sys::fuzz_target;

fn shapes() -> &'static Shapes {
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    SHAPES.get_or_init(|| {
        let text = include_str!("../seeds/shapes.json");
        serde_json::from_str::<HashMap<String, Vec<i64>>>(text).expect("seeds/shapes.json")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(model) = Model::from_onnx("fuzz", data, None) else { return };
    let _ = model.forward_graph();
    let _ = model.probe_graph();
    let _ = model.gradient_graph(shapes(), &model.input.name, Backward::Gradient);
    let _ = model.gradient_graph(shapes(), &model.input.name, Backward::DeepLift);
    if let Some(head) = model.head_layer() {
        let _ = model.gradient_graph(shapes(), &head.tensor, Backward::Gradient);
    }
});
