//! Pictures of an explanation (`RenderSpec`), drawn with the rendering module the `explain` CLI
//! uses too: attribution maps as heatmaps over the model's view of the image, layer tensors as
//! grids of feature maps.

use explain_imaging::render;
use image::RgbImage;
use ndarray::{Axis, Ix4};

use super::{NamedTensor, job::RenderOptions};

/// Smallest side of a feature-map tile, in pixels: small maps are enlarged to it.
const MIN_TILE: u32 = 64;

/// A PNG of one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    /// `render/<tensor name>`.
    pub name: String,
    /// The PNG file.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The pictures `options` asks for, of `tensors`, drawn over `view` (what the model saw).
pub(super) fn draw(options: &RenderOptions, view: &RgbImage, tensors: &[NamedTensor]) -> Vec<Picture> {
    let mut pictures = Vec::new();
    for tensor in tensors {
        let name = format!("render/{}", tensor.name);
        if options.heatmaps && tensor.name.starts_with("attribution/") {
            if let Some(heat) = render::heat(tensor.tensor.view()) {
                let image = render::overlay(view, heat.view(), options.colormap, options.alpha);
                pictures.push(Picture { name, png: render::png(&image), width: image.width(), height: image.height() });
            }
        } else if options.grids
            && (tensor.name.starts_with("activation/") || tensor.name.starts_with("gradient/"))
            && let Ok(maps) = tensor.tensor.view().into_dimensionality::<Ix4>()
        {
            let image = render::grid(maps.index_axis(Axis(0), 0), options.columns, options.rows, MIN_TILE);
            pictures.push(Picture { name, png: render::png(&image), width: image.width(), height: image.height() });
        }
    }
    pictures
}
