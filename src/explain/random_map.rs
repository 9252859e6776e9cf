//! The Random map baseline (docs/REFERENCE.md, "Random map"): pytorch-grad-cam's
//! `RandomCAM` — channel weights drawn uniformly from [−1, 1) — made reproducible: each
//! image's weights come from a generator seeded by its file path, so the same image gets
//! the same map in any batch, run or order. A faithfulness score means something only
//! beside this baseline's.

use super::cam::{CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::method::{MethodInfo, Pass};
use anyhow::{Context, Result};
use std::path::Path;
use tch::Tensor;

/// The Random baseline as a [`CamRule`] (registered as `Cam(RandomMap)`).
pub struct RandomMap;

const INFO: MethodInfo = MethodInfo {
    name: "random",
    aliases: &["random_cam", "random_map"],
    title: "Random (baseline)",
    note: "Random baseline: channel weights drawn uniformly from [-1, 1) with a seed from the image's path (reproducible); ReLU of the weighted sum. Scores of other methods mean something beside this one's.",
    passes: &[Pass::LayerActivations],
    weight_store: false,
};

impl CamRule for RandomMap {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn weights(&self, chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        let a = &input.layer.activations;
        let (_, c, _, _) = a.size4().context("activations must be [B, C, h, w]")?;
        let rows: Vec<Tensor> = chunk
            .base
            .inputs
            .paths
            .iter()
            .map(|p| Tensor::from_slice(&random_weights(p, c as usize)))
            .collect();
        Ok(CamWeights {
            weights: Tensor::stack(&rows, 0).to_kind(a.kind()).to_device(a.device()),
            activations: a.shallow_clone(),
            dead: input.dead.to_vec(),
        })
    }
}

/// `n` weights uniform in [−1, 1) from a SplitMix64 generator seeded by the FNV-1a hash of
/// `path` (its bytes as the OS stores them).
pub fn random_weights(path: &Path, n: usize) -> Vec<f32> {
    let mut state = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 24 bits as a float in [0, 1), then [−1, 1).
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_reproducible_per_path_and_in_range() {
        let a = random_weights(Path::new("data/cat.png"), 512);
        assert_eq!(a, random_weights(Path::new("data/cat.png"), 512));
        assert_ne!(a, random_weights(Path::new("data/dog.png"), 512));
        assert!(a.iter().all(|w| (-1.0..1.0).contains(w)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let negative = a.iter().filter(|w| **w < 0.0).count();
        assert!(mean.abs() < 0.1 && (200..312).contains(&negative), "{mean} {negative}");
        // A prefix of a longer draw: the weights of channel i do not depend on C.
        assert_eq!(&random_weights(Path::new("data/cat.png"), 1024)[..512], &a[..]);
    }
}
