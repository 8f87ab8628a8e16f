//! Channel selection on layer tensors (`[1, C, …]`): an explicit list, or the top-k channels by
//! mean value.

use ndarray::{ArrayD, Axis};

use super::job::ChannelSelection;

/// A layer tensor restricted to the selected channels, with their original indices.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SelectedChannels {
    /// The tensor, `[1, C_sel, …]`.
    pub(super) tensor: ArrayD<f32>,
    /// Original index of each channel kept; empty when every channel was kept in order.
    pub(super) indices: Vec<usize>,
}

/// Selects channels of `tensor` (axis 1). Indices were validated against the layer's shape. For
/// `TopK`, `score` maps each channel's values to the number channels are ranked by.
pub(super) fn select(
    tensor: ArrayD<f32>,
    selection: &ChannelSelection,
    score: impl Fn(f32) -> f32,
) -> SelectedChannels {
    let indices: Vec<usize> = match selection {
        ChannelSelection::All => return SelectedChannels { tensor, indices: Vec::new() },
        ChannelSelection::List(indices) => indices.clone(),
        ChannelSelection::TopK(k) => {
            let channels = tensor.len_of(Axis(1));
            let means: Vec<f32> = (0..channels)
                .map(|c| {
                    let view = tensor.index_axis(Axis(1), c);
                    view.iter().map(|&v| score(v)).sum::<f32>() / view.len().max(1) as f32
                })
                .collect();
            let mut order: Vec<usize> = (0..channels).collect();
            order.sort_by(|&a, &b| means[b].total_cmp(&means[a]));
            order.truncate(*k);
            order
        }
    };
    SelectedChannels { tensor: tensor.select(Axis(1), &indices), indices }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array, IxDyn};

    use super::*;

    fn tensor() -> ArrayD<f32> {
        // Channel c holds the value c * (-1)^c: means 0, -1, 2, -3, 4.
        Array::from_shape_fn(IxDyn(&[1, 5, 2, 2]), |i| (i[1] as f32) * if i[1] % 2 == 0 { 1.0 } else { -1.0 })
    }

    #[test]
    fn all_keeps_everything_without_indices() {
        let selected = select(tensor(), &ChannelSelection::All, |v| v);
        assert_eq!(selected.tensor, tensor());
        assert!(selected.indices.is_empty());
    }

    #[test]
    fn list_keeps_the_requested_order() {
        let selected = select(tensor(), &ChannelSelection::List(vec![3, 0]), |v| v);
        assert_eq!(selected.indices, [3, 0]);
        assert_eq!(selected.tensor.shape(), &[1, 2, 2, 2]);
        assert_eq!(selected.tensor[[0, 0, 1, 1]], -3.0);
    }

    #[test]
    fn top_k_ranks_by_the_score() {
        assert_eq!(select(tensor(), &ChannelSelection::TopK(2), |v| v).indices, [4, 2]);
        assert_eq!(select(tensor(), &ChannelSelection::TopK(2), f32::abs).indices, [4, 3]);
        assert_eq!(select(tensor(), &ChannelSelection::TopK(9), |v| v).indices.len(), 5);
    }
}
