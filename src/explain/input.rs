//! Images as the network sees them: decoded, put through the run's test transform
//! (resize, centre crop) and ImageNet-normalised; the transformed RGB crops are kept for
//! the overlays.

use crate::data::decode::decode_rgb;
use crate::data::rng::Rng;
use crate::data::transform::{normalise_into, Transform};
use anyhow::{Context, Result};
use image::RgbImage;
use std::path::{Path, PathBuf};
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

/// An image file that could not be read, and why.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The file.
    pub path: PathBuf,
    /// The decoder's error.
    pub reason: String,
}

/// Loads image files with `transform`; errors name the file that cannot be read.
pub fn load_inputs(paths: &[PathBuf], transform: Transform, device: Device) -> Result<Inputs> {
    let mut crops = Vec::with_capacity(paths.len());
    for p in paths {
        let image = crop(p, transform).with_context(|| format!("explaining {}", p.display()))?;
        crops.push((p.clone(), image));
    }
    Ok(batch(crops, transform, device))
}

/// Loads the image files that can be read with `transform`, and lists the others.
pub fn load_readable(
    paths: &[PathBuf],
    transform: Transform,
    device: Device,
) -> (Inputs, Vec<Unreadable>) {
    let mut crops = Vec::with_capacity(paths.len());
    let mut unreadable = Vec::new();
    for p in paths {
        match crop(p, transform) {
            Ok(image) => crops.push((p.clone(), image)),
            Err(e) => unreadable.push(Unreadable {
                path: p.clone(),
                reason: format!("{e:#}"),
            }),
        }
    }
    (batch(crops, transform, device), unreadable)
}

/// One file decoded and transformed (the decoder's errors name the file).
fn crop(path: &Path, transform: Transform) -> Result<RgbImage> {
    Ok(transform.apply(&decode_rgb(path)?, &mut Rng::new(0)))
}

/// Transformed crops as a normalised batch on `device`.
fn batch(crops: Vec<(PathBuf, RgbImage)>, transform: Transform, device: Device) -> Inputs {
    let len = transform.output_len();
    let mut data = vec![0f32; crops.len() * len];
    for (i, (_, image)) in crops.iter().enumerate() {
        normalise_into(image, &mut data[i * len..(i + 1) * len]);
    }
    let c = transform.crop as i64;
    let tensor = Tensor::from_slice(&data)
        .view([crops.len() as i64, 3, c, c])
        .to_device(device);
    let (paths, images) = crops.into_iter().unzip();
    Inputs {
        paths,
        images,
        tensor,
    }
}
