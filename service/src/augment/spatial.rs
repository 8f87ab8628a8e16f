//! Gradients of the spatial ops: convolution (a transposed convolution with the same weights, or an
//! equivalent correlation), max pooling (scatter-add through the pool's indices), average pooling
//! (a transposed depthwise convolution with a constant kernel), global means and sums (a broadcast,
//! scaled for a mean) and constant padding (a slice).

use explain_proto::onnx::NodeProto;

use super::{
    AugmentError,
    rules::{Rules, unsupported},
};
use crate::graph;

/// Window geometry of a Conv or pooling node, with `auto_pad` resolved to explicit pads.
struct Window {
    kernel: Vec<i64>,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    /// Begin pads, then end pads (ONNX order).
    pads: Vec<i64>,
}

/// Largest kernel size, stride, dilation or pad accepted: far beyond any real model, small enough
/// that the window arithmetic cannot overflow.
const MAX_WINDOW: i64 = 1 << 16;
/// Largest spatial size accepted, likewise.
const MAX_SIZE: i64 = 1 << 24;

/// `shape`, if it is `[N, C, spatial…]` with `spatial` sizes of at most [`MAX_SIZE`].
fn spatial_shape<'s>(node: &NodeProto, shape: &'s [i64], spatial: usize) -> Result<&'s [i64], AugmentError> {
    if shape.len() != 2 + spatial || shape.iter().any(|&d| !(0..=MAX_SIZE).contains(&d)) {
        return Err(unsupported(node, &format!("a tensor of shape {shape:?} for a {spatial}-d window")));
    }
    Ok(shape)
}

impl Window {
    fn of(node: &NodeProto, input: &[i64], kernel: Vec<i64>) -> Result<Self, AugmentError> {
        let spatial = kernel.len();
        let input = spatial_shape(node, input, spatial)?;
        let or_ones = |values: Vec<i64>| if values.is_empty() { vec![1; spatial] } else { values };
        let strides = or_ones(graph::ints_attribute(node, "strides"));
        let dilations = or_ones(graph::ints_attribute(node, "dilations"));
        let positive = |values: &[i64]| values.len() == spatial && values.iter().all(|v| (1..=MAX_WINDOW).contains(v));
        if spatial == 0 || !positive(&kernel) || !positive(&strides) || !positive(&dilations) {
            return Err(unsupported(
                node,
                &format!("a malformed window (kernel {kernel:?}, strides {strides:?}, dilations {dilations:?})"),
            ));
        }
        let pads = match graph::string_attribute(node, "auto_pad", "NOTSET").as_str() {
            "NOTSET" => {
                let pads = graph::ints_attribute(node, "pads");
                if pads.is_empty() { vec![0; 2 * spatial] } else { pads }
            }
            "VALID" => vec![0; 2 * spatial],
            mode @ ("SAME_UPPER" | "SAME_LOWER") => {
                let mut pads = vec![0; 2 * spatial];
                for i in 0..spatial {
                    let size = input[2 + i];
                    let out = (size + strides[i] - 1) / strides[i];
                    let total = ((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size).max(0);
                    let small = total / 2;
                    (pads[i], pads[spatial + i]) =
                        if mode == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                }
                pads
            }
            other => return Err(unsupported(node, &format!("auto_pad = {other}"))),
        };
        if pads.len() != 2 * spatial || pads.iter().any(|p| !(0..=MAX_WINDOW).contains(p)) {
            return Err(unsupported(node, &format!("malformed pads {pads:?}")));
        }
        Ok(Self { kernel, strides, dilations, pads })
    }

    /// The output padding that makes a transposed convolution of `output` return `input`'s size.
    fn output_padding(&self, node: &NodeProto, input: &[i64], output: &[i64]) -> Result<Vec<i64>, AugmentError> {
        let spatial = self.kernel.len();
        let output = spatial_shape(node, output, spatial)?;
        (0..spatial)
            .map(|i| {
                let (s, d, k) = (self.strides[i], self.dilations[i], self.kernel[i]);
                let natural = (output[2 + i] - 1) * s + (k - 1) * d + 1 - self.pads[i] - self.pads[spatial + i];
                let padding = input[2 + i] - natural;
                if (0..s.max(d)).contains(&padding) {
                    Ok(padding)
                } else {
                    Err(unsupported(node, &format!("cannot invert spatial size {} → {}", input[2 + i], output[2 + i])))
                }
            })
            .collect()
    }

    /// Attributes of the transposed convolution that inverts this window.
    fn transpose_attributes(&self, output_padding: &[i64], group: i64) -> Vec<explain_proto::onnx::AttributeProto> {
        vec![
            graph::attr_ints("kernel_shape", &self.kernel),
            graph::attr_ints("strides", &self.strides),
            graph::attr_ints("dilations", &self.dilations),
            graph::attr_ints("pads", &self.pads),
            graph::attr_ints("output_padding", output_padding),
            graph::attr_int("group", group),
        ]
    }
}

/// Conv: the gradient's `ConvTranspose` with the same weights, strides, pads, dilations and
/// groups, its output padding chosen to give back the input's size. Two faster equivalents are
/// used where they apply, because ONNX Runtime's Conv kernels are much faster than its
/// ConvTranspose: for stride-1 convolutions, the full correlation ([`full_correlation`]); for a
/// strided convolution of the image itself, the phase-split correlation ([`phase_correlation`]).
pub(super) fn conv(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let (x, w, y) = (&node.input[0], &node.input[1], &node.output[0]);
    let (input, output, weights) = (rules.shape(x)?, rules.shape(y)?, rules.shape(w)?);
    let kernel = match graph::ints_attribute(node, "kernel_shape") {
        kernel if kernel.is_empty() => weights.get(2..).unwrap_or_default().to_vec(),
        kernel => kernel,
    };
    let window = Window::of(node, input, kernel)?;
    let group = graph::int_attribute(node, "group", 1);
    if let Some(correlation) = full_correlation(rules, &window, w, group, grad) {
        return Ok(correlation);
    }
    if let Some(correlation) = phase_correlation(rules, &window, w, group, grad, (input, output)) {
        return Ok(correlation);
    }
    let padding = window.output_padding(node, input, output)?;
    let attributes = window.transpose_attributes(&padding, group);
    Ok(rules.emit.op("ConvTranspose", &[grad, w], attributes))
}

/// A constant 2-D convolution kernel `[out, in per group, kh, kw]`, with its values.
struct Kernel {
    dims: [usize; 4],
    values: Vec<f32>,
}

impl Kernel {
    /// The initializer `weight`, if it is a well-formed 2-D kernel.
    fn constant(rules: &Rules<'_>, weight: &str) -> Option<Self> {
        let tensor = rules.graph.initializer.iter().find(|t| t.name() == weight)?;
        let [out, per_group, kh, kw] = tensor.dims[..] else { return None };
        let size = |d: i64| usize::try_from(d).ok().filter(|&d| d > 0);
        let dims = [size(out)?, size(per_group)?, size(kh)?, size(kw)?];
        let values = graph::float_values(tensor);
        let count = dims[0].checked_mul(dims[1])?.checked_mul(dims[2])?.checked_mul(dims[3])?;
        (values.len() == count).then_some(Self { dims, values })
    }

    /// The value at `[o, c, y, x]`.
    fn at(&self, o: usize, c: usize, y: usize, x: usize) -> f32 {
        let [_, per_group, kh, kw] = self.dims;
        self.values[((o * per_group + c) * kh + y) * kw + x]
    }
}

/// The stride-1 Conv data gradient as a Conv, when the weights are a constant 2-D kernel and the
/// pads fit inside the kernel's extent; `None` otherwise.
fn full_correlation(rules: &mut Rules<'_>, window: &Window, weight: &str, group: i64, grad: &str) -> Option<String> {
    let spatial = window.kernel.len();
    if spatial != 2 || window.strides.iter().any(|&s| s != 1) {
        return None;
    }
    let pads: Vec<i64> = (0..2 * spatial)
        .map(|i| window.dilations[i % spatial] * (window.kernel[i % spatial] - 1) - window.pads[i])
        .collect();
    if pads.iter().any(|&p| p < 0) {
        return None;
    }
    let flipped = match rules.flipped.get(weight) {
        Some(flipped) => flipped.clone(),
        None => {
            let kernel = Kernel::constant(rules, weight)?;
            let [out, per_group, kh, kw] = kernel.dims;
            if group < 1 || out % group as usize != 0 {
                return None;
            }
            let out_per_group = out / group as usize;
            let inputs = per_group * group as usize;
            // W'[g·(C/g) + c, m, y, x] = W[g·(M/g) + m, c, kh−1−y, kw−1−x]
            let mut swapped = vec![0.0_f32; kernel.values.len()];
            for g in 0..group as usize {
                for m in 0..out_per_group {
                    for c in 0..per_group {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let to = (((g * per_group + c) * out_per_group + m) * kh + (kh - 1 - ky)) * kw
                                    + (kw - 1 - kx);
                                swapped[to] = kernel.at(g * out_per_group + m, c, ky, kx);
                            }
                        }
                    }
                }
            }
            let dims = [inputs as i64, out_per_group as i64, kh as i64, kw as i64];
            let flipped = rules.emit.floats(&dims, &swapped);
            rules.flipped.insert(weight.to_owned(), flipped.clone());
            flipped
        }
    };
    let attributes = vec![
        graph::attr_ints("kernel_shape", &window.kernel),
        graph::attr_ints("dilations", &window.dilations),
        graph::attr_ints("pads", &pads),
        graph::attr_int("group", group),
    ];
    Some(rules.emit.op("Conv", &[grad, &flipped], attributes))
}

/// Most input channels for which a strided Conv's data gradient is phase-split: the image's 1 to
/// 4. ONNX Runtime's ConvTranspose is slowest there (a large kernel scattered into a few
/// channels: 3.1 of ResNet-18's 5.6 ms of ConvTranspose at batch 1); inside the network its
/// 3 × 3 and 1 × 1 strided ones are faster than their phase-split Conv and `DepthToSpace`.
const PHASE_SPLIT_MAX_CHANNELS: usize = 4;

/// The data gradient of a strided Conv (stride s in both axes, one group, constant weights, at
/// most [`PHASE_SPLIT_MAX_CHANNELS`] input channels) as one Conv over the output gradient, a
/// `DepthToSpace` and a `Slice`; `None` otherwise.
///
/// Input position `i` (in padded coordinates, `i = q·s + r`) receives `w[k]·g[q − m]` from every
/// tap `k` with `k·d = m·s + r`. So for each phase `r` of each axis the gradient is a correlation
/// of `g` with the taps of that phase; one Conv computes all `s²` phases as `s²` output channels
/// per input channel, `DepthToSpace` (CRD) interleaves them, and the slice drops the padding.
fn phase_correlation(
    rules: &mut Rules<'_>,
    window: &Window,
    weight: &str,
    group: i64,
    grad: &str,
    (input, output): (&[i64], &[i64]),
) -> Option<String> {
    let stride = *window.strides.first()?;
    if window.kernel.len() != 2 || window.strides[1] != stride || stride < 2 || group != 1 || output.len() != 4 {
        return None;
    }
    let kernel = Kernel::constant(rules, weight)?;
    let [out, channels, kh, kw] = kernel.dims;
    if channels > PHASE_SPLIT_MAX_CHANNELS || [kh, kw] != [window.kernel[0], window.kernel[1]].map(|k| k as usize) {
        return None;
    }
    let s = stride as usize;
    // Per axis: each tap's phase and shift, and the phase kernels' length.
    let taps = |size: usize, dilation: i64| -> Vec<(usize, usize)> {
        (0..size).map(|k| (k * dilation as usize % s, k * dilation as usize / s)).collect()
    };
    let (rows, cols) = (taps(kh, window.dilations[0]), taps(kw, window.dilations[1]));
    let length = |taps: &[(usize, usize)]| taps.iter().map(|&(_, shift)| shift + 1).max().unwrap_or(1);
    let (lh, lw) = (length(&rows), length(&cols));
    let count = (channels * s * s).checked_mul(out)?.checked_mul(lh)?.checked_mul(lw)?;
    if count > MAX_SIZE as usize {
        return None;
    }
    // V[(c·s + rh)·s + rw, o, lh−1−mh, lw−1−mw] = W[o, c, kh, kw] for the taps of phase (rh, rw).
    let mut values = vec![0.0_f32; count];
    for c in 0..channels {
        for (ky, &(rh, mh)) in rows.iter().enumerate() {
            for (kx, &(rw, mw)) in cols.iter().enumerate() {
                for o in 0..out {
                    let phase = (c * s + rh) * s + rw;
                    values[((phase * out + o) * lh + (lh - 1 - mh)) * lw + (lw - 1 - mw)] = kernel.at(o, c, ky, kx);
                }
            }
        }
    }
    let dims = [(channels * s * s) as i64, out as i64, lh as i64, lw as i64];
    let phase_kernel = rules.emit.floats(&dims, &values);
    // Enough phase rows to cover the padded input: q·s ≥ pad + size, and at least the gradient's.
    let end_pad = |axis: usize| {
        let covered = (window.pads[axis] + input[2 + axis] + stride - 1) / stride;
        (covered - output[2 + axis]).max(0)
    };
    let (lh, lw) = (lh as i64, lw as i64);
    let attributes = vec![
        graph::attr_ints("kernel_shape", &[lh, lw]),
        graph::attr_ints("pads", &[lh - 1, lw - 1, end_pad(0), end_pad(1)]),
    ];
    let phases = rules.emit.op("Conv", &[grad, &phase_kernel], attributes);
    let attributes = vec![graph::attr_int("blocksize", stride), graph::attr_string("mode", "CRD")];
    let interleaved = rules.emit.op("DepthToSpace", &[&phases], attributes);
    let starts = rules.emit.ints(&[2], &window.pads[..2]);
    let ends = rules.emit.ints(&[2], &[window.pads[0] + input[2], window.pads[1] + input[3]]);
    let axes = rules.emit.ints(&[2], &[2, 3]);
    Some(rules.emit.op("Slice", &[&interleaved, &starts, &ends, &axes], vec![]))
}

/// MaxPool: the gradient scatter-added into a zero tensor shaped like the input, at the maxima.
pub(super) fn max_pool(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    scatter_to_maxima(rules, node, grad)
}

/// `values` (shaped like the pool's output) scatter-added into a zero tensor shaped like its
/// input, at the indices of the maxima (the forward node was given an `Indices` output; they index
/// the flattened input). Not MaxUnpool: ResNet's 3×3/2 windows overlap, and overlapping maxima must
/// add up.
pub(super) fn scatter_to_maxima(rules: &mut Rules<'_>, node: &NodeProto, values: &str) -> Result<String, AugmentError> {
    if graph::int_attribute(node, "storage_order", 0) != 0 {
        return Err(unsupported(node, "storage_order = 1"));
    }
    let x = node.input[0].as_str();
    let indices =
        rules.pool_indices.get(&node.output[0]).cloned().ok_or_else(|| unsupported(node, "no indices output"))?;
    let shape = rules.emit.op("Shape", &[x], vec![]);
    let zeros = rules.emit.op("ConstantOfShape", &[&shape], vec![]);
    let zeros = rules.emit.reshape_to(&zeros, &[-1]);
    let flat_indices = rules.emit.reshape_to(&indices, &[-1]);
    let flat_values = rules.emit.reshape_to(values, &[-1]);
    let attributes = vec![graph::attr_int("axis", 0), graph::attr_string("reduction", "add")];
    let scattered = rules.emit.op("ScatterElements", &[&zeros, &flat_indices, &flat_values], attributes);
    Ok(rules.emit.op("Reshape", &[&scattered, &shape], vec![]))
}

/// AveragePool: a transposed depthwise convolution whose kernel holds 1 / window size. Exact when
/// every window has the same size: no padding, or padding counted in the average.
pub(super) fn average_pool(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let (x, y) = (&node.input[0], &node.output[0]);
    let (input, output) = (rules.shape(x)?, rules.shape(y)?);
    let window = Window::of(node, input, graph::ints_attribute(node, "kernel_shape"))?;
    if window.dilations.iter().any(|&d| d != 1) {
        return Err(unsupported(node, "dilated average pooling"));
    }
    let padded = window.pads.iter().any(|&p| p != 0);
    if graph::int_attribute(node, "ceil_mode", 0) != 0
        || (padded && graph::int_attribute(node, "count_include_pad", 0) == 0)
    {
        return Err(unsupported(node, "windows of unequal size (ceil_mode, or padding left out of the average)"));
    }
    let padding = window.output_padding(node, input, output)?;
    let channels = input[1];
    let size: i64 = window.kernel.iter().product();
    if channels.checked_mul(size).is_none_or(|values| values > MAX_SIZE) {
        return Err(unsupported(node, &format!("a {channels}-channel kernel of {size} values per channel")));
    }
    let mut dims = vec![channels, 1];
    dims.extend(&window.kernel);
    let kernel = rules.emit.floats(&dims, &vec![1.0 / size as f32; (channels * size) as usize]);
    Ok(rules.emit.op("ConvTranspose", &[grad, &kernel], window.transpose_attributes(&padding, channels)))
}

/// GlobalAveragePool: the gradient divided by the spatial size, broadcast back over it.
pub(super) fn global_average_pool(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let x = node.input[0].as_str();
    let shape = rules.shape(x)?;
    let count: i64 =
        shape.get(2..).ok_or_else(|| unsupported(node, &format!("an input of shape {shape:?}")))?.iter().product();
    let scale = rules.emit.scalar(1.0 / count as f32);
    let scaled = rules.emit.op("Mul", &[grad, &scale], vec![]);
    Ok(rules.emit.expand_like(&scaled, x))
}

/// ReduceMean or ReduceSum over non-batch axes: the gradient broadcast back over those axes, for a
/// mean divided by their size (like a global average pool).
pub(super) fn reduce(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let x = node.input[0].as_str();
    let input = rules.shape(x)?;
    let rank = input.len() as i64;
    if rank == 0 {
        return Err(unsupported(node, "a mean of a scalar"));
    }
    let axes = match node.input.get(1).filter(|name| !name.is_empty()) {
        Some(name) => {
            graph::constant_int64s(rules.graph, name).ok_or_else(|| unsupported(node, "axes that are not constant"))?
        }
        None => graph::ints_attribute(node, "axes"),
    };
    if axes.is_empty() && graph::int_attribute(node, "noop_with_empty_axes", 0) != 0 {
        return Ok(grad.to_owned());
    }
    let axes: Vec<usize> = if axes.is_empty() {
        (0..input.len()).collect()
    } else {
        axes.iter().map(|a| a.rem_euclid(rank) as usize).collect()
    };
    if axes.contains(&0) {
        return Err(unsupported(node, "a mean over the batch axis"));
    }
    let count: i64 = axes.iter().map(|&a| input[a]).product();
    let kept = if graph::int_attribute(node, "keepdims", 1) == 1 {
        grad.to_owned()
    } else {
        let shape: Vec<i64> = (0..input.len())
            .map(|a| {
                if a == 0 {
                    0
                } else if axes.contains(&a) {
                    1
                } else {
                    input[a]
                }
            })
            .collect();
        rules.emit.reshape_to(grad, &shape)
    };
    let scaled = if node.op_type() == "ReduceSum" {
        kept
    } else {
        let scale = rules.emit.scalar(1.0 / count as f32);
        rules.emit.op("Mul", &[&kept, &scale], vec![])
    };
    Ok(rules.emit.expand_like(&scaled, x))
}

/// Pad with a constant (zeros or another value) by pads that are constant or follow from shapes:
/// the gradient without the padding, sliced back to the input's extent.
pub(super) fn pad(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let input = rules.shape(&node.input[0])?.to_vec();
    let rank = input.len();
    if graph::string_attribute(node, "mode", "constant") != "constant" {
        return Err(unsupported(node, "a mode other than constant"));
    }
    let pads = node
        .input
        .get(1)
        .filter(|name| !name.is_empty())
        .and_then(|name| super::fold::int64s(rules.graph, rules.shapes, name))
        .ok_or_else(|| unsupported(node, "pads that are neither constant nor set by the input's size"))?;
    let axes: Vec<usize> = match node.input.get(3).filter(|name| !name.is_empty()) {
        Some(name) => super::fold::int64s(rules.graph, rules.shapes, name)
            .ok_or_else(|| unsupported(node, "axes that are not constant"))?
            .into_iter()
            .map(|axis| axis.rem_euclid(rank.max(1) as i64) as usize)
            .collect(),
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() || pads.iter().any(|&pad| !(0..=MAX_WINDOW).contains(&pad)) {
        return Err(unsupported(node, &format!("pads {pads:?} (negative pads crop)")));
    }
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    for (i, &axis) in axes.iter().enumerate() {
        let (begin, end) = (pads[i], pads[axes.len() + i]);
        if axis == 0 && (begin, end) != (0, 0) {
            return Err(unsupported(node, "padding of the batch"));
        }
        starts.push(begin);
        ends.push(begin + input[axis]);
    }
    let axes: Vec<i64> = axes.iter().map(|&axis| axis as i64).collect();
    let count = axes.len() as i64;
    let (starts, ends, axes) =
        (rules.emit.ints(&[count], &starts), rules.emit.ints(&[count], &ends), rules.emit.ints(&[count], &axes));
    Ok(rules.emit.op("Slice", &[grad, &starts, &ends, &axes], vec![]))
}
