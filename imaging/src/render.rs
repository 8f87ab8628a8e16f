//! Pictures of explanations, shared by the service's `RenderSpec` and the `explain` CLI: an
//! attribution map as a heatmap blended over the image the model saw, and feature maps as a grid
//! of grayscale tiles (the brief's 4 × 8 grid of `layer2.1`).

mod colormap;

use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage, imageops::FilterType};
use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewD, Axis};

pub use self::colormap::ColorMap;

/// Why an image cannot be turned into the model's view.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// The image has no pixels.
    #[error("the image has no pixels ({width}×{height})")]
    Empty {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// Resizing the image would take more memory than allowed: its aspect ratio is too extreme.
    #[error(
        "the image is {width}×{height} pixels: resized to a shorter side of {size} it would be {resized} \
         (a {work}-pixel resize), over the limit of {limit} pixels; crop it closer to a square"
    )]
    TooLarge {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The shorter side after resizing.
        size: u32,
        /// The resized size, `W×H`, or `overflow` when it does not fit 32 bits.
        resized: String,
        /// Pixels the resize works through (0 when the size overflows).
        work: u64,
        /// The limit.
        limit: u64,
    },
}

/// How an image becomes the model's view: the size it is resized to, computed with checked
/// arithmetic and bounded before anything is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewPlan {
    /// The resized width and height (shorter side `max(resize_size, height, width)`).
    pub resized: (u32, u32),
    /// The crop's height and width.
    pub crop: (u32, u32),
}

impl ViewPlan {
    /// The plan for an image of `image_width` × `image_height` pixels, refused when the resize
    /// would work through more than `max_pixels` pixels: both its output and its intermediate
    /// (the separable filter first resamples the columns, to `image_width` × resized height).
    pub fn new(
        (image_width, image_height): (u32, u32),
        resize_size: u32,
        (height, width): (u32, u32),
        max_pixels: u64,
    ) -> Result<Self, ViewError> {
        if image_width == 0 || image_height == 0 {
            return Err(ViewError::Empty { width: image_width, height: image_height });
        }
        let size = resize_size.max(height.max(width));
        let (short, long) = (image_width.min(image_height), image_width.max(image_height));
        // torchvision truncates the longer side: size · long / short.
        let resized_long = (u64::from(size) * u64::from(long) / u64::from(short)).max(1);
        let resized =
            if image_width <= image_height { (u64::from(size), resized_long) } else { (resized_long, u64::from(size)) };
        let work = resized.0.checked_mul(resized.1).zip(u64::from(image_width).checked_mul(resized.1));
        let too_large = |work| ViewError::TooLarge {
            width: image_width,
            height: image_height,
            size,
            resized: if resized_long > u64::from(u32::MAX) {
                "overflow".to_owned()
            } else {
                format!("{}×{}", resized.0, resized.1)
            },
            work,
            limit: max_pixels,
        };
        let (output, intermediate) = work.ok_or_else(|| too_large(0))?;
        let work = output.max(intermediate);
        let (Ok(resized_width), Ok(resized_height)) = (u32::try_from(resized.0), u32::try_from(resized.1)) else {
            return Err(too_large(work));
        };
        if work > max_pixels {
            return Err(too_large(work));
        }
        Ok(Self { resized: (resized_width, resized_height), crop: (height, width) })
    }
}

/// The picture the model sees of an image: the shorter side resized as `plan` says (bilinear,
/// antialiased; the longer side truncated, as torchvision does), then the centre of the crop's
/// size cropped (offsets rounded). `plan` must have been made for this image's size.
pub fn model_view(image: &RgbImage, plan: &ViewPlan) -> RgbImage {
    view(image, plan, FilterType::Triangle)
}

/// Where each pixel of the model's view comes from in a label image of the same geometry (a
/// segmentation): [`model_view`] with nearest-neighbour resizing, so no colour is blended.
pub fn model_view_nearest(image: &RgbImage, plan: &ViewPlan) -> RgbImage {
    view(image, plan, FilterType::Nearest)
}

fn view(image: &RgbImage, plan: &ViewPlan, filter: FilterType) -> RgbImage {
    let (new_w, new_h) = plan.resized;
    let (height, width) = plan.crop;
    let resized = if (new_w, new_h) == image.dimensions() {
        image.clone()
    } else {
        image::imageops::resize(image, new_w, new_h, filter)
    };
    let top = ((f64::from(resized.height()) - f64::from(height)) / 2.0).round() as u32;
    let left = ((f64::from(resized.width()) - f64::from(width)) / 2.0).round() as u32;
    image::imageops::crop_imm(&resized, left, top, width, height).to_image()
}

/// The RGB picture of a normalised `[1, 3, H, W]` tensor (the inverse of the normalisation).
pub fn denormalize(tensor: ArrayViewD<'_, f32>, mean: [f32; 3], std: [f32; 3]) -> RgbImage {
    let (height, width) = (tensor.shape()[2], tensor.shape()[3]);
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let channel = |c: usize| {
            let value = tensor[[0, c, y as usize, x as usize]] * std[c] + mean[c];
            (value.clamp(0.0, 1.0) * 255.0).round() as u8
        };
        Rgb([channel(0), channel(1), channel(2)])
    })
}

/// An attribution map (`[1, C, h, w]`) as one heat value per pixel: the sum of absolute values
/// over channels, scaled so that the largest is 1. `None` for tensors without two spatial axes
/// (the IG delta).
pub fn heat(attribution: ArrayViewD<'_, f32>) -> Option<Array2<f32>> {
    let [1, _channels, height, width] = *attribution.shape() else { return None };
    let mut heat = Array2::<f32>::zeros((height, width));
    for channel in attribution.index_axis(Axis(0), 0).axis_iter(Axis(0)) {
        heat.zip_mut_with(&channel, |h, v| *h += v.abs());
    }
    let max = heat.iter().copied().fold(0.0_f32, f32::max);
    if max > 0.0 {
        heat.mapv_inplace(|h| h / max);
    }
    Some(heat)
}

/// `heat` (values in [0, 1], any size) coloured with `map` and blended over `base` with opacity
/// `alpha`, resized bilinearly to the base's size.
pub fn overlay(base: &RgbImage, heat: ArrayView2<'_, f32>, map: ColorMap, alpha: f32) -> RgbImage {
    let (rows, columns) = heat.dim();
    let small = GrayImage::from_fn(columns as u32, rows as u32, |x, y| {
        Luma([(heat[[y as usize, x as usize]].clamp(0.0, 1.0) * 255.0).round() as u8])
    });
    let heat = image::imageops::resize(&small, base.width(), base.height(), FilterType::Triangle);
    let alpha = alpha.clamp(0.0, 1.0);
    RgbImage::from_fn(base.width(), base.height(), |x, y| {
        let colour = map.color(f32::from(heat.get_pixel(x, y)[0]) / 255.0);
        let under = base.get_pixel(x, y);
        Rgb(std::array::from_fn(|c| (f32::from(under[c]) * (1.0 - alpha) + f32::from(colour[c]) * alpha).round() as u8))
    })
}

/// Feature maps (`[C, h, w]`) as a grid of `rows` × `columns` grayscale tiles in channel order
/// (channels beyond the grid are left out), each tile scaled to its own min–max and enlarged to
/// at least `min_tile` pixels, with a 2-pixel white gutter.
pub fn grid(maps: ArrayView3<'_, f32>, columns: u32, rows: u32, min_tile: u32) -> GrayImage {
    let (channels, h, w) = maps.dim();
    let scale = min_tile.div_ceil(h.max(w).max(1) as u32).max(1);
    let (tile_h, tile_w) = (h as u32 * scale, w as u32 * scale);
    let gutter = 2;
    let columns = columns.max(1);
    let rows = rows.max(1).min((channels as u32).div_ceil(columns).max(1));
    let mut canvas =
        GrayImage::from_pixel(columns * (tile_w + gutter) + gutter, rows * (tile_h + gutter) + gutter, Luma([255]));
    for (index, map) in maps.axis_iter(Axis(0)).take((columns * rows) as usize).enumerate() {
        let (low, high) = map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let span = if high > low { high - low } else { 1.0 };
        let (left, top) = (
            gutter + (index as u32 % columns) * (tile_w + gutter),
            gutter + (index as u32 / columns) * (tile_h + gutter),
        );
        for y in 0..tile_h {
            for x in 0..tile_w {
                let value = map[[(y / scale) as usize, (x / scale) as usize]];
                canvas.put_pixel(left + x, top + y, Luma([(((value - low) / span) * 255.0).round() as u8]));
            }
        }
    }
    canvas
}

/// A PNG file of `image`.
pub fn png<P, C>(image: &image::ImageBuffer<P, C>) -> Vec<u8>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut bytes = Vec::new();
    // Writing a PNG to memory cannot fail for these pixel types.
    let _ = image.write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png);
    bytes
}

#[cfg(test)]
mod tests {
    use ndarray::{Array3, Array4};

    use super::*;

    #[test]
    fn the_model_view_is_the_centre_crop_of_the_resized_image() {
        let image =
            RgbImage::from_fn(100, 50, |x, _| if (25..75).contains(&x) { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
        let plan = ViewPlan::new(image.dimensions(), 20, (20, 20), 1 << 20).expect("a plan");
        assert_eq!(plan.resized, (40, 20));
        let view = model_view(&image, &plan);
        assert_eq!(view.dimensions(), (20, 20));
        assert!(view.pixels().all(|p| p[0] > 200 && p[2] < 50), "the centre is red");
    }

    #[test]
    fn extreme_aspect_ratios_are_refused_before_resizing() {
        // 40,000,000 × 1 once made the resize allocate 46.7 GB (40 M columns × 73 rows × 16 bytes).
        for dimensions in [(40_000_000, 1), (1, 40_000_000), (u32::MAX, 1), (1, u32::MAX)] {
            let refused = ViewPlan::new(dimensions, 73, (64, 64), 40_000_000);
            assert!(matches!(refused, Err(ViewError::TooLarge { .. })), "{dimensions:?}: {refused:?}");
        }
        let message = ViewPlan::new((u32::MAX, 1), 73, (64, 64), 40_000_000).expect_err("refused").to_string();
        assert!(message.contains("overflow"), "{message}");
        assert!(matches!(ViewPlan::new((0, 5), 73, (64, 64), 100), Err(ViewError::Empty { .. })));
        // The bound counts the column pass too: 20,000 × 1,000 resized to 73 high is 1,460 × 73 out,
        // but 20,000 × 73 in between.
        let plan = ViewPlan::new((20_000, 1_000), 73, (64, 64), 1_460_000).expect("within the limit");
        assert_eq!(plan.resized, (1_460, 73));
        assert!(ViewPlan::new((20_000, 1_000), 73, (64, 64), 1_459_999).is_err());
        // An ordinary photo is fine.
        assert_eq!(ViewPlan::new((4_000, 3_000), 256, (224, 224), 40_000_000).expect("ok").resized, (341, 256));
    }

    #[test]
    fn heat_sums_channels_and_scales_to_one() {
        let mut map = Array4::<f32>::zeros((1, 3, 2, 2));
        map[[0, 0, 0, 0]] = -2.0;
        map[[0, 2, 0, 0]] = 2.0;
        map[[0, 1, 1, 1]] = 1.0;
        let heat = heat(map.view().into_dyn()).expect("spatial");
        assert_eq!(heat, ndarray::array![[1.0, 0.0], [0.0, 0.25]]);
        assert!(super::heat(ndarray::arr1(&[0.5_f32]).view().into_dyn()).is_none());
    }

    #[test]
    fn overlays_and_grids_have_their_sizes_and_content() {
        let base = RgbImage::from_pixel(32, 32, Rgb([128, 128, 128]));
        let heat = Array2::from_shape_fn((4, 4), |(y, x)| (y * 4 + x) as f32 / 15.0);
        let picture = overlay(&base, heat.view(), ColorMap::Viridis, 0.5);
        assert_eq!(picture.dimensions(), (32, 32));
        assert_ne!(picture.get_pixel(0, 0), picture.get_pixel(31, 31), "the heat shows");

        let maps = Array3::from_shape_fn((40, 8, 8), |(c, y, x)| (c + y * x) as f32);
        let tiles = grid(maps.view(), 8, 4, 32);
        // 8 columns × (32 + 2) + 2 wide, 4 rows × (32 + 2) + 2 high; 32 of 40 channels drawn.
        assert_eq!(tiles.dimensions(), (8 * 34 + 2, 4 * 34 + 2));
        let values: std::collections::BTreeSet<u8> = tiles.pixels().map(|p| p[0]).collect();
        assert!(values.len() > 10, "tiles are not constant");
        let decoded = image::load_from_memory(&png(&tiles)).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), tiles.dimensions());
    }
}
