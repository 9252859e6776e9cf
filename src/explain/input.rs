//! Images as the network sees them: decoded, put through the run's test transform
//! (resize, centre crop) and ImageNet-normalised; the transformed RGB crops are kept for
//! the overlays.

use crate::data::decode::decode_rgb;
use crate::data::rng::Rng;
use crate::data::transform::{normalise_into, Transform};
use anyhow::{Context, Result};
use image::RgbImage;
use std::path::PathBuf;
use tch::{Device, Tensor};

/// A batch of images ready for the network.
pub struct Inputs {
    /// The files, in batch order.
    pub paths: Vec<PathBuf>,
    /// The transformed crops (what the network sees), for overlays.
    pub images: Vec<RgbImage>,
    /// `[B, 3, crop, crop]`, normalised, on `device`.
    pub tensor: Tensor,
}

/// Loads image files with `transform`; errors name the file that cannot be read.
pub fn load_inputs(paths: &[PathBuf], transform: Transform, device: Device) -> Result<Inputs> {
    let len = transform.output_len();
    let mut data = vec![0f32; paths.len() * len];
    let mut images = Vec::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        let image = transform.apply(
            &decode_rgb(p).with_context(|| format!("explaining {}", p.display()))?,
            &mut Rng::new(0),
        );
        normalise_into(&image, &mut data[i * len..(i + 1) * len]);
        images.push(image);
    }
    let c = transform.crop as i64;
    let tensor = Tensor::from_slice(&data)
        .view([paths.len() as i64, 3, c, c])
        .to_device(device);
    Ok(Inputs {
        paths: paths.to_vec(),
        images,
        tensor,
    })
}
