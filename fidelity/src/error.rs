//! Why a metric cannot be computed for a map.

/// Why a metric cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FidelityError {
    /// The attribution tensor is not a map over the model's input.
    #[error(
        "an attribution of shape {shape:?} is not [1, C, H, W], [C, H, W] or [H, W] with H × W = {height} × {width}"
    )]
    Shape {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The input's height.
        height: usize,
        /// The input's width.
        width: usize,
    },
    /// The attribution holds NaN or an infinity.
    #[error("the attribution holds a value that is not finite")]
    NotFinite,
    /// The map and the mask (or two maps) cover different pixels.
    #[error("the map is {map:?} and the mask {mask:?}")]
    Mismatch {
        /// The map's (height, width) or length.
        map: (usize, usize),
        /// The mask's (or the other map's).
        mask: (usize, usize),
    },
    /// The mask marks no pixel: nothing to point at.
    #[error("the mask marks no pixel")]
    EmptyMask,
    /// Every value of the map is zero: it holds no relevance to distribute.
    #[error("the map is zero everywhere")]
    ZeroMap,
}
