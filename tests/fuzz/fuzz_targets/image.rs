//! Image decoding and preprocessing: any bytes give a model view or an error, within the limits,
//! never a panic or an allocation beyond them.
#![no_main]

use explain_service::preprocess::{self, ImageLimits, Preprocessing};
use libfuzzer_sys::fuzz_target;

const LIMITS: ImageLimits = ImageLimits { max_bytes: 1 << 20, max_pixels: 4_000_000 };

fuzz_target!(|data: &[u8]| {
    let preprocessing =
        Preprocessing { height: 64, width: 64, resize_size: 73, mean: preprocess::IMAGENET_MEAN, std: preprocess::IMAGENET_STD };
    if let Ok((tensor, view)) = preprocess::prepare(data, LIMITS, &preprocessing) {
        assert_eq!(tensor.shape(), &[1, 3, 64, 64]);
        assert_eq!(view.dimensions(), (64, 64));
    }
});
