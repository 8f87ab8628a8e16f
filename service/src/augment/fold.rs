//! Integer values a graph computes from tensor shapes (the bounds of a Slice, say, as the legacy
//! exporter writes `x.chunk(2, dim=1)`): folded at augmentation time from the measured shapes. A
//! value that depends on the batch size, which is left open, does not fold.

use explain_proto::onnx::GraphProto;

use super::Shapes;
use crate::graph;

/// How deep a chain of shape arithmetic is followed.
const MAX_DEPTH: usize = 32;
/// Most elements of a folded value.
const MAX_LENGTH: usize = 64;

/// The int64 values of `name` if they are constants or follow from shapes other than the batch
/// size through Shape, Gather, Unsqueeze, Squeeze, Concat, Cast, Identity, Add, Sub, Mul and Div.
pub(super) fn int64s(graph: &GraphProto, shapes: &Shapes, name: &str) -> Option<Vec<i64>> {
    fold(graph, shapes, name, 0)?.into_iter().collect()
}

/// Values of `name`, `None` for an element that depends on the batch size.
fn fold(graph: &GraphProto, shapes: &Shapes, name: &str, depth: usize) -> Option<Vec<Option<i64>>> {
    if let Some(values) = graph::constant_int64s(graph, name) {
        return (values.len() <= MAX_LENGTH).then(|| values.into_iter().map(Some).collect());
    }
    if depth >= MAX_DEPTH {
        return None;
    }
    let node = graph.node.iter().find(|node| node.output.first().is_some_and(|output| output == name))?;
    let input = |position: usize| {
        node.input.get(position).filter(|name| !name.is_empty()).and_then(|name| fold(graph, shapes, name, depth + 1))
    };
    let values = match node.op_type() {
        "Shape" => {
            let shape = shapes.get(node.input.first()?)?;
            let rank = shape.len() as i64;
            let bound = |attribute: &str, default: i64| {
                let value = graph::int_attribute(node, attribute, default);
                (if value < 0 { value + rank } else { value }).clamp(0, rank) as usize
            };
            let (start, end) = (bound("start", 0), bound("end", rank));
            (start..end.max(start)).map(|axis| (axis != 0).then(|| shape[axis])).collect()
        }
        "Gather" => {
            let (data, indices) = (input(0)?, input(1)?);
            let length = data.len() as i64;
            indices
                .into_iter()
                .map(|index| {
                    let index = index?;
                    let index = if index < 0 { index + length } else { index };
                    usize::try_from(index).ok().and_then(|i| data.get(i).copied())
                })
                .collect::<Option<Vec<_>>>()?
        }
        "Unsqueeze" | "Squeeze" | "Cast" | "Identity" => input(0)?,
        "Concat" => {
            let mut values = Vec::new();
            for position in 0..node.input.len() {
                values.extend(input(position)?);
            }
            values
        }
        op @ ("Add" | "Sub" | "Mul" | "Div") => {
            let (a, b) = (input(0)?, input(1)?);
            let length = a.len().max(b.len());
            if !(a.len() == length || a.len() == 1) || !(b.len() == length || b.len() == 1) {
                return None;
            }
            (0..length)
                .map(|i| {
                    let (x, y) = (a[i.min(a.len() - 1)], b[i.min(b.len() - 1)]);
                    Some(x.zip(y).and_then(|(x, y)| match op {
                        "Add" => x.checked_add(y),
                        "Sub" => x.checked_sub(y),
                        "Mul" => x.checked_mul(y),
                        _ => x.checked_div(y),
                    }))
                })
                .collect::<Option<Vec<_>>>()?
        }
        _ => return None,
    };
    (values.len() <= MAX_LENGTH).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{int64_tensor, node};

    #[test]
    fn half_the_channels_fold_and_the_batch_size_does_not() {
        let graph = GraphProto {
            node: vec![
                node("Shape", "shape", &["x"], &["shape"], vec![]),
                node("Gather", "channels", &["shape", "one"], &["channels"], vec![]),
                node("Div", "half", &["channels", "two"], &["half"], vec![]),
                node("Unsqueeze", "as_list", &["half", "zero"], &["as_list"], vec![]),
                node("Gather", "batch", &["shape", "zero"], &["batch"], vec![]),
                node("Concat", "both", &["batch", "half"], &["both"], vec![graph::attr_int("axis", 0)]),
            ],
            initializer: vec![
                int64_tensor("one", &[], &[1]),
                int64_tensor("two", &[], &[2]),
                int64_tensor("zero", &[1], &[0]),
            ],
            ..Default::default()
        };
        let shapes = Shapes::from([("x".to_owned(), vec![1, 116, 7, 7])]);
        assert_eq!(int64s(&graph, &shapes, "as_list"), Some(vec![58]));
        assert_eq!(int64s(&graph, &shapes, "two"), Some(vec![2]));
        assert_eq!(int64s(&graph, &shapes, "batch"), None, "the batch size is open");
        assert_eq!(int64s(&graph, &shapes, "both"), None);
        assert_eq!(int64s(&graph, &shapes, "missing"), None);
    }
}
