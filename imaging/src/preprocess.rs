//! Image preprocessing, as torchvision's evaluation transform does it: decode, convert to RGB,
//! resize the shorter side (bilinear, antialiased) and crop the centre (the model view, shared
//! with rendering), scale to [0, 1], normalise per channel. Decoding is bounded in bytes and
//! pixels, and the resize it leads to is planned and bounded from the image's header before
//! anything is decoded, so a hostile image cannot exhaust memory.

use std::io::Cursor;

use crate::render::{self, ViewError, ViewPlan};
use image::{ImageReader, RgbImage};
use ndarray::Array4;

/// How images become model inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocessing {
    /// Model input height.
    pub height: u32,
    /// Model input width.
    pub width: u32,
    /// The shorter side is resized to this before the centre crop.
    pub resize_size: u32,
    /// Per-channel mean of RGB values in [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

/// ImageNet's channel means, torchvision's default.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's channel standard deviations, torchvision's default.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Preprocessing {
    /// The default resize for an input of this size: torchvision's 256 / 224 ratio.
    pub fn default_resize_size(height: u32, width: u32) -> u32 {
        (f64::from(height.min(width)) * 256.0 / 224.0).round() as u32
    }
}

/// Bounds on the images accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest encoded image, in bytes.
    pub max_bytes: usize,
    /// Largest decoded image, in pixels (width × height).
    pub max_pixels: u64,
}

impl ImageLimits {
    /// The service's defaults (`--max-image-bytes`, `--max-image-pixels`), which the SDK's tools
    /// apply to the images they read, too.
    pub const DEFAULT: Self = Self { max_bytes: 20 << 20, max_pixels: 40_000_000 };
}

/// Why an image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The encoded image is empty.
    #[error("the image is empty")]
    Empty,
    /// The encoded image is larger than allowed.
    #[error("the image is {size} bytes; the limit is {limit}")]
    TooManyBytes {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The decoded image would be larger than allowed.
    #[error("the image is {width}×{height} pixels; the limit is {limit} pixels")]
    TooManyPixels {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not an image in a supported format.
    #[error("cannot decode the image: {0}")]
    Decode(String),
    /// The image cannot be resized to the model's view within the limits (an extreme aspect
    /// ratio) or has no pixels.
    #[error(transparent)]
    View(#[from] ViewError),
}

/// Decodes an encoded image and makes the model's view of it: the normalised `[1, 3, H, W]`
/// tensor and the picture it was made from. Sizes are checked against `limits` from the header
/// before decoding, the resize is planned (and bounded by the same pixel limit) before it runs.
pub fn prepare(
    bytes: &[u8],
    limits: ImageLimits,
    preprocessing: &Preprocessing,
) -> Result<(Array4<f32>, RgbImage), PreprocessError> {
    let view = model_view(bytes, limits, preprocessing)?;
    Ok((to_tensor(&view, preprocessing), view))
}

/// Decodes an encoded image into the picture the model sees (resized and centre-cropped, not
/// normalised), under the same checks as [`prepare`]: for callers that draw over it.
pub fn model_view(
    bytes: &[u8],
    limits: ImageLimits,
    preprocessing: &Preprocessing,
) -> Result<RgbImage, PreprocessError> {
    let dimensions = header_dimensions(bytes, limits)?;
    // Planned from the header first, so that nothing is decoded for a view that cannot be made.
    plan(dimensions, limits, preprocessing)?;
    let image = decode(bytes, dimensions, limits)?;
    // The decoder's own size is the one that counts; it matches the header's for sound files.
    let plan = plan(image.dimensions(), limits, preprocessing)?;
    Ok(render::model_view(&image, &plan))
}

fn plan(dimensions: (u32, u32), limits: ImageLimits, preprocessing: &Preprocessing) -> Result<ViewPlan, ViewError> {
    let crop = (preprocessing.height, preprocessing.width);
    ViewPlan::new(dimensions, preprocessing.resize_size, crop, limits.max_pixels)
}

fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, PreprocessError> {
    ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| PreprocessError::Decode(e.to_string()))
}

/// The width and height an encoded image declares, within `limits`.
fn header_dimensions(bytes: &[u8], limits: ImageLimits) -> Result<(u32, u32), PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(PreprocessError::TooManyBytes { size: bytes.len(), limit: limits.max_bytes });
    }
    let (width, height) = reader(bytes)?.into_dimensions().map_err(|e| PreprocessError::Decode(e.to_string()))?;
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PreprocessError::TooManyPixels { width, height, limit: limits.max_pixels });
    }
    Ok((width, height))
}

/// Decodes an image whose header declared `(width, height)` to RGB, the decoder held to that
/// size and to 16 bytes a pixel.
fn decode(bytes: &[u8], (width, height): (u32, u32), limits: ImageLimits) -> Result<RgbImage, PreprocessError> {
    let mut reader = reader(bytes)?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(16));
    reader.limits(decoder_limits);
    let image = reader.decode().map_err(|e| PreprocessError::Decode(e.to_string()))?;
    Ok(image.to_rgb8())
}

/// Segment ids of the model's view of a label image (e.g. superpixels: each colour one segment),
/// decoded under the same checks as [`prepare`] and resized and cropped like an image of its size,
/// by nearest neighbour: one id (`0xRRGGBB`) per pixel, row-major, `height × width` of them.
pub fn segment_ids(
    bytes: &[u8],
    limits: ImageLimits,
    preprocessing: &Preprocessing,
) -> Result<Vec<u32>, PreprocessError> {
    let dimensions = header_dimensions(bytes, limits)?;
    plan(dimensions, limits, preprocessing)?;
    let labels = decode(bytes, dimensions, limits)?;
    let view = render::model_view_nearest(&labels, &plan(labels.dimensions(), limits, preprocessing)?);
    Ok(view.pixels().map(|&image::Rgb([r, g, b])| u32::from_be_bytes([0, r, g, b])).collect())
}

/// The normalised `[1, 3, H, W]` tensor of a model view.
pub fn to_tensor(view: &RgbImage, preprocessing: &Preprocessing) -> Array4<f32> {
    let (w, h) = view.dimensions();
    Array4::from_shape_fn((1, 3, h as usize, w as usize), |(_, c, y, x)| {
        let value = f32::from(view.get_pixel(x as u32, y as u32)[c]) / 255.0;
        (value - preprocessing.mean[c]) / preprocessing.std[c]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preprocessing() -> Preprocessing {
        Preprocessing { height: 4, width: 4, resize_size: 4, mean: [0.5; 3], std: [0.25; 3] }
    }

    fn png(image: &RgbImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode png");
        bytes
    }

    const LIMITS: ImageLimits = ImageLimits { max_bytes: 1 << 20, max_pixels: 1 << 20 };

    #[test]
    fn normalises_channels_in_order() {
        let image = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 128]));
        let (tensor, view) = prepare(&png(&image), LIMITS, &preprocessing()).expect("prepare");
        assert_eq!(view.dimensions(), (4, 4));
        assert_eq!(tensor.shape(), &[1, 3, 4, 4]);
        assert!((tensor[[0, 0, 0, 0]] - 2.0).abs() < 1e-6);
        assert!((tensor[[0, 1, 3, 3]] + 2.0).abs() < 1e-6);
        assert!((tensor[[0, 2, 1, 2]] - (128.0 / 255.0 - 0.5) / 0.25).abs() < 1e-6);
    }

    #[test]
    fn resizes_shorter_side_then_crops_centre() {
        // An 8×16 image (w×h), black in its top and bottom 2 rows: resizing the shorter side to 4
        // gives 4×8, whose centre 4×4 crop (rows 2–5, from source rows 4–11) is all white.
        let image =
            RgbImage::from_fn(
                8,
                16,
                |_, y| if (2..14).contains(&y) { image::Rgb([255; 3]) } else { image::Rgb([0; 3]) },
            );
        let (tensor, _) = prepare(&png(&image), LIMITS, &preprocessing()).expect("prepare");
        assert!(tensor.iter().all(|v| (v - 2.0).abs() < 0.1), "{tensor:?}");
    }

    #[test]
    fn refuses_garbage_empty_and_oversized_input() {
        let prepare = |bytes: &[u8], limits| prepare(bytes, limits, &preprocessing());
        assert!(matches!(prepare(b"not an image", LIMITS), Err(PreprocessError::Decode(_))));
        assert!(matches!(prepare(b"", LIMITS), Err(PreprocessError::Empty)));
        let big = png(&RgbImage::new(64, 64));
        let tight = ImageLimits { max_bytes: 1 << 20, max_pixels: 100 };
        assert!(matches!(prepare(&big, tight), Err(PreprocessError::TooManyPixels { width: 64, height: 64, .. })));
        let tiny = ImageLimits { max_bytes: 10, max_pixels: 1 << 20 };
        assert!(matches!(prepare(&big, tiny), Err(PreprocessError::TooManyBytes { .. })));
    }

    #[test]
    fn extreme_aspect_ratios_are_refused_from_the_header() {
        // 4,000 × 1 is within 1 M pixels, but resized to a shorter side of 4 it is 16,000 × 4 (and
        // 4,000 × 4 in between): over a limit of 10,000 pixels, refused before decoding.
        let wide = png(&RgbImage::new(4_000, 1));
        let limits = ImageLimits { max_bytes: 1 << 20, max_pixels: 10_000 };
        let refused = prepare(&wide, limits, &preprocessing());
        assert!(matches!(refused, Err(PreprocessError::View(ViewError::TooLarge { .. }))), "{refused:?}");
        let tall = png(&RgbImage::new(1, 4_000));
        assert!(matches!(prepare(&tall, limits, &preprocessing()), Err(PreprocessError::View(_))));
    }

    #[test]
    fn segments_keep_their_colours_through_resizing_and_cropping() {
        // An 8 × 16 label image: a red top half and a blue bottom half, one green pixel. Resized to
        // 4 × 8 by nearest neighbour and cropped to its centre 4 × 4: rows 2–3 red, 4–5 blue; no
        // colour blended, the lone pixel gone.
        let labels = RgbImage::from_fn(8, 16, |x, y| match (x, y) {
            (0, 0) => image::Rgb([0, 255, 0]),
            (_, y) if y < 8 => image::Rgb([255, 0, 0]),
            _ => image::Rgb([0, 0, 255]),
        });
        let ids = segment_ids(&png(&labels), LIMITS, &preprocessing()).expect("segments");
        let (red, blue) = (0xff_0000, 0x00_00ff);
        assert_eq!(ids, [[red; 8], [blue; 8]].concat());
        assert!(matches!(segment_ids(b"", LIMITS, &preprocessing()), Err(PreprocessError::Empty)));
    }
}
