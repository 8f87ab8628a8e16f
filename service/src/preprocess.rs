//! Image preprocessing, as torchvision's evaluation transform does it: decode, convert to RGB,
//! resize the shorter side (bilinear, antialiased) and crop the centre (the model view, shared
//! with rendering), scale to [0, 1], normalise per channel. Decoding is bounded in bytes and
//! pixels so a hostile image cannot exhaust memory.

use std::io::Cursor;

use explain_client::render;
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
}

/// Decodes an encoded image to RGB, within `limits`.
pub fn decode(bytes: &[u8], limits: ImageLimits) -> Result<RgbImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(PreprocessError::TooManyBytes { size: bytes.len(), limit: limits.max_bytes });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Decode(e.to_string()))?;
    let (width, height) = reader.into_dimensions().map_err(|e| PreprocessError::Decode(e.to_string()))?;
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PreprocessError::TooManyPixels { width, height, limit: limits.max_pixels });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Decode(e.to_string()))?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(16));
    reader.limits(decoder_limits);
    let image = reader.decode().map_err(|e| PreprocessError::Decode(e.to_string()))?;
    Ok(image.to_rgb8())
}

/// The picture the model sees: `image` resized and centre-cropped as torchvision does.
pub fn view(image: &RgbImage, preprocessing: &Preprocessing) -> RgbImage {
    render::model_view(image, preprocessing.resize_size, preprocessing.height, preprocessing.width)
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
        let tensor =
            to_tensor(&view(&decode(&png(&image), LIMITS).expect("decode"), &preprocessing()), &preprocessing());
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
        let tensor = to_tensor(&view(&image, &preprocessing()), &preprocessing());
        assert!(tensor.iter().all(|v| (v - 2.0).abs() < 0.1), "{tensor:?}");
    }

    #[test]
    fn refuses_garbage_empty_and_oversized_input() {
        assert!(matches!(decode(b"not an image", LIMITS), Err(PreprocessError::Decode(_))));
        assert!(matches!(decode(b"", LIMITS), Err(PreprocessError::Empty)));
        let big = png(&RgbImage::new(64, 64));
        let tight = ImageLimits { max_bytes: 1 << 20, max_pixels: 100 };
        assert!(matches!(decode(&big, tight), Err(PreprocessError::TooManyPixels { width: 64, height: 64, .. })));
        let tiny = ImageLimits { max_bytes: 10, max_pixels: 1 << 20 };
        assert!(matches!(decode(&big, tiny), Err(PreprocessError::TooManyBytes { .. })));
    }
}
