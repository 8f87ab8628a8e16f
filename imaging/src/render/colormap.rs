//! Colour maps of heatmaps: matplotlib's perceptually uniform viridis and inferno, and gray.

#[rustfmt::skip]
mod tables;

/// A colour map from [0, 1] to RGB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorMap {
    /// matplotlib's viridis (dark blue → green → yellow).
    #[default]
    Viridis,
    /// matplotlib's inferno (black → red → yellow).
    Inferno,
    /// Black to white.
    Gray,
}

impl ColorMap {
    /// The colour of `value` (clamped to [0, 1]).
    pub fn color(self, value: f32) -> [u8; 3] {
        let index = (value.clamp(0.0, 1.0) * 255.0).round() as usize;
        match self {
            Self::Viridis => tables::VIRIDIS[index],
            Self::Inferno => tables::INFERNO[index],
            Self::Gray => [index as u8; 3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maps_run_from_dark_to_light() {
        assert_eq!(ColorMap::Viridis.color(0.0), [68, 1, 84]);
        assert_eq!(ColorMap::Viridis.color(1.0), [253, 231, 37]);
        assert_eq!(ColorMap::Inferno.color(0.0), [0, 0, 4]);
        assert_eq!(ColorMap::Gray.color(0.5), [128; 3]);
        assert_eq!(ColorMap::Gray.color(7.0), [255; 3], "clamped");
    }
}
