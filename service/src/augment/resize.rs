//! The gradient of Resize (nearest and linear, 2-D, constant scales or sizes). Resizing a plane is
//! Y = A_h · X · A_wᵀ, with A_h and A_w the interpolation matrices of the two axes, so the input's
//! gradient is A_hᵀ · G · A_w. The matrices are computed here, from the measured sizes, with ONNX's
//! coordinate transformation and rounding rules, and emitted as constants.

use explain_proto::onnx::NodeProto;

use super::{
    AugmentError,
    rules::{Rules, unsupported},
};
use crate::graph;

/// Largest resized side accepted: the matrices hold input × output values per axis.
const MAX_SIDE: i64 = 4096;

/// How one axis is resized.
struct Axis {
    input: usize,
    output: usize,
    /// output / input, from the `scales` input or from the sizes.
    scale: f64,
}

/// Resize's input gradient.
pub(super) fn resize(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let (input, output) = (rules.shape(&node.input[0])?.to_vec(), rules.shape(&node.output[0])?.to_vec());
    if input.len() != 4 || output.len() != 4 || input[..2] != output[..2] {
        return Err(unsupported(node, &format!("a resize of {input:?} to {output:?} (only height and width)")));
    }
    if input.iter().chain(&output).skip(2).any(|&side| !(1..=MAX_SIDE).contains(&side)) {
        return Err(unsupported(node, &format!("sides beyond {MAX_SIDE}")));
    }
    let mode = graph::string_attribute(node, "mode", "nearest");
    let transform = graph::string_attribute(node, "coordinate_transformation_mode", "half_pixel");
    let rounding = graph::string_attribute(node, "nearest_mode", "round_prefer_floor");
    if graph::int_attribute(node, "antialias", 0) != 0 || !graph::ints_attribute(node, "axes").is_empty() {
        return Err(unsupported(node, "antialias or axes"));
    }
    let scales = node.input.get(2).filter(|name| !name.is_empty()).map(|name| {
        graph::constant_floats(rules.graph, name).ok_or_else(|| unsupported(node, "scales that are not constant"))
    });
    let scales = match scales.transpose()? {
        Some(scales) if scales.is_empty() => None,
        Some(scales) if scales.len() == 4 => Some(scales),
        Some(scales) => return Err(unsupported(node, &format!("scales {scales:?}"))),
        None => None,
    };
    let axis = |dimension: usize| Axis {
        input: input[dimension] as usize,
        output: output[dimension] as usize,
        scale: scales.as_ref().map_or(output[dimension] as f64 / input[dimension] as f64, |s| f64::from(s[dimension])),
    };
    let matrix = |axis: &Axis| -> Result<Vec<f32>, AugmentError> {
        let mut values = vec![0.0_f32; axis.output * axis.input];
        for position in 0..axis.output {
            let original = source(node, &transform, axis, position)?;
            let last = (axis.input - 1) as f64;
            match mode.as_str() {
                "nearest" => {
                    let index = match rounding.as_str() {
                        "round_prefer_floor" => (original - 0.5).ceil(),
                        "round_prefer_ceil" => (original + 0.5).floor(),
                        "floor" => original.floor(),
                        "ceil" => original.ceil(),
                        other => return Err(unsupported(node, &format!("nearest_mode = {other}"))),
                    };
                    values[position * axis.input + index.clamp(0.0, last) as usize] = 1.0;
                }
                "linear" => {
                    let clamped = original.clamp(0.0, last);
                    let low = clamped.floor();
                    let high = (low + 1.0).min(last);
                    let weight = clamped - low;
                    values[position * axis.input + low as usize] += (1.0 - weight) as f32;
                    values[position * axis.input + high as usize] += weight as f32;
                }
                other => return Err(unsupported(node, &format!("mode = {other}"))),
            }
        }
        Ok(values)
    };
    let (height, width) = (axis(2), axis(3));
    let (rows, columns) = (matrix(&height)?, matrix(&width)?);
    // G_X = A_hᵀ · G · A_w: A_hᵀ is [H_in, H_out], A_w is [W_out, W_in].
    let mut transposed = vec![0.0_f32; rows.len()];
    for out in 0..height.output {
        for inp in 0..height.input {
            transposed[inp * height.output + out] = rows[out * height.input + inp];
        }
    }
    let emit = &mut rules.emit;
    let rows = emit.floats(&[height.input as i64, height.output as i64], &transposed);
    let columns = emit.floats(&[width.output as i64, width.input as i64], &columns);
    let down = emit.op("MatMul", &[&rows, grad], vec![]);
    Ok(emit.op("MatMul", &[&down, &columns], vec![]))
}

/// The input coordinate an output `position` reads, by ONNX's coordinate transformation `mode`.
fn source(node: &NodeProto, mode: &str, axis: &Axis, position: usize) -> Result<f64, AugmentError> {
    let (x, scale) = (position as f64, axis.scale);
    Ok(match mode {
        "half_pixel" => (x + 0.5) / scale - 0.5,
        "pytorch_half_pixel" if axis.output > 1 => (x + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => 0.0,
        "align_corners" if axis.output > 1 => x * (axis.input - 1) as f64 / (axis.output - 1) as f64,
        "align_corners" => 0.0,
        "asymmetric" => x / scale,
        other => return Err(unsupported(node, &format!("coordinate_transformation_mode = {other}"))),
    })
}
