//! Draws the sample image the docs' pictures explain (there is no image download): a red disc, a
//! blue square and a yellow triangle on a soft green gradient, 320 × 240.
//!
//! `cargo run -p explain-client --example sample_image -- OUT.png`

use image::{Rgb, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: sample_image OUT.png")?;
    let (width, height) = (320_u32, 240_u32);
    let image = RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let in_disc = (fx - 95.0).powi(2) + (fy - 110.0).powi(2) < 55.0_f32.powi(2);
        let in_square = (175.0..265.0).contains(&fx) && (45.0..135.0).contains(&fy);
        let in_triangle = fy > 150.0 && fy < 225.0 && (fx - 215.0).abs() < (fy - 150.0) * 0.8;
        if in_disc {
            Rgb([215, 40, 40])
        } else if in_square {
            Rgb([40, 70, 200])
        } else if in_triangle {
            Rgb([240, 200, 30])
        } else {
            Rgb([90 + (fx / 8.0) as u8, 150 + (fy / 6.0) as u8, 100])
        }
    });
    image.save(&out)?;
    println!("wrote {out}");
    Ok(())
}
