//! Target layers of the CAM family (`--layer NAME`, docs/REFERENCE.md, "Target layers"):
//! torchvision module names (`layer3`, `layer4.1`, `features.14`), checked against the
//! network, and the passes that record their activations (and ∂score/∂A) through the
//! network's layer taps. With no name given, the layer is the last convolution, read from
//! the plain forward pass as before.

use super::saliency::{dead, sensitivity, Explainable, Gradients, ScoreFn};
use crate::model::layers::apply_activation;
use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use tch::{Device, Kind, Tensor};

/// The `--layer` value that picks the deepest layer at least [`FINE_SIDE`]×[`FINE_SIDE`]
/// at the run's input size (the last convolution when it is that fine).
pub const AUTO_LAYER: &str = "auto";

/// The smallest side (in activation cells) at which a CAM is more than a few blobs: below
/// it the page says the layer is coarse and names a finer one.
pub const FINE_SIDE: i64 = 7;

/// One layer's activations for a batch, and ∂score/∂A when a gradient pass ran.
pub struct CamLayer {
    /// The torchvision module name (`last conv` when the network has none).
    pub name: String,
    /// A: `[B, C, h, w]`.
    pub activations: Tensor,
    /// ∂score/∂A: `[B, C, h, w]`, when the pass computed gradients.
    pub grads: Option<Tensor>,
}

impl CamLayer {
    /// ∂score/∂A, or an internal error when the pass computed none.
    pub fn grads(&self) -> Result<&Tensor> {
        match &self.grads {
            Some(g) => Ok(g),
            None => bail!("internal error: a CAM read gradients of a pass without them"),
        }
    }

    /// The last convolution's layer of a computed gradient pass.
    pub fn of_gradients(net: &dyn Explainable, g: &Gradients) -> CamLayer {
        CamLayer {
            name: last_layer_name(net),
            activations: g.activations.shallow_clone(),
            grads: Some(g.activation_grads.shallow_clone()),
        }
    }
}

/// The chosen layers of a batch, in the order given, and per image whether its score is
/// dead (always false without gradients).
pub struct LayerPasses {
    /// One entry per chosen layer.
    pub layers: Vec<CamLayer>,
    /// Per image: whether its score has no gradient.
    pub dead: Vec<bool>,
}

/// The name of a network's last convolution (what CAMs use without `--layer`).
pub fn last_layer_name(net: &dyn Explainable) -> String {
    net.layer_names()
        .pop()
        .unwrap_or_else(|| "last conv".to_string())
}

/// Checks `names` against the network's layers; an unknown one is an error listing the
/// valid names.
pub fn check_layers(net: &dyn Explainable, names: &[String]) -> Result<()> {
    let valid = net.layer_names();
    for name in names {
        if !valid.iter().any(|v| v == name) {
            if valid.is_empty() {
                bail!("--layer {name:?}: this network has no named layers");
            }
            bail!(
                "--layer {name:?} is not a layer of this network: expected one of {}",
                valid.join(", ")
            );
        }
    }
    Ok(())
}

/// The activations at `names` (empty: the last convolution) of images `x` `[B, 3, H, W]`,
/// with ∂score/∂A of each when `grads` is set.
pub fn layer_passes(
    net: &dyn Explainable,
    x: &Tensor,
    score: &ScoreFn<'_>,
    names: &[String],
    grads: bool,
) -> Result<LayerPasses> {
    let b = x.size().first().copied().unwrap_or(0) as usize;
    if names.is_empty() {
        if grads {
            let g = super::saliency::gradients(net, x, score, false)?;
            return Ok(LayerPasses {
                layers: vec![CamLayer::of_gradients(net, &g)],
                dead: g.dead(),
            });
        }
        let (_, a) = tch::no_grad(|| net.forward_explained(x, &mut apply_activation));
        return Ok(LayerPasses {
            layers: vec![CamLayer {
                name: last_layer_name(net),
                activations: a,
                grads: None,
            }],
            dead: vec![false; b],
        });
    }
    check_layers(net, names)?;
    let recorded: RefCell<Vec<Option<Tensor>>> = RefCell::new(names.iter().map(|_| None).collect());
    let mut tap = |name: &str, t: Tensor| {
        for (slot, n) in recorded.borrow_mut().iter_mut().zip(names) {
            if n == name && slot.is_none() {
                *slot = Some(t.shallow_clone());
            }
        }
        t
    };
    let x = x.detach().set_requires_grad(grads);
    let e = if grads {
        net.forward_tapped(&x, &mut apply_activation, &mut tap)?
    } else {
        tch::no_grad(|| net.forward_tapped(&x, &mut apply_activation, &mut tap))?
    };
    let acts: Vec<Tensor> = recorded
        .into_inner()
        .into_iter()
        .zip(names)
        .map(|(a, n)| a.with_context(|| format!("internal error: layer {n} was not tapped")))
        .collect::<Result<_>>()?;
    if !grads {
        let layers = names
            .iter()
            .zip(acts)
            .map(|(n, a)| CamLayer {
                name: n.clone(),
                activations: a,
                grads: None,
            })
            .collect();
        return Ok(LayerPasses {
            layers,
            dead: vec![false; b],
        });
    }
    let s = score(&e);
    let mut inputs: Vec<Tensor> = acts.iter().map(|a| a.shallow_clone()).collect();
    inputs.push(e.shallow_clone());
    let g = Tensor::run_backward(&[s.sum(s.kind())], &inputs, false, false);
    let dead = dead(&sensitivity(&g[acts.len()], &e.detach())?);
    let layers = names
        .iter()
        .zip(acts)
        .zip(g)
        .map(|((n, a), g)| CamLayer {
            name: n.clone(),
            activations: a.detach(),
            grads: Some(g),
        })
        .collect();
    Ok(LayerPasses { layers, dead })
}

/// Every named layer's spatial size `(name, h, w)` at an input of `height`×`width`, in
/// forward order (one forward pass of a zero image on `device`).
pub fn layer_sizes(
    net: &dyn Explainable,
    height: i64,
    width: i64,
    device: Device,
) -> Result<Vec<(String, i64, i64)>> {
    let x = Tensor::zeros([1, 3, height, width], (Kind::Float, device));
    let mut sizes = Vec::new();
    let mut tap = |name: &str, t: Tensor| {
        let s = t.size();
        if s.len() == 4 && sizes.iter().all(|(n, _, _): &(String, i64, i64)| n != name) {
            sizes.push((name.to_string(), s[2], s[3]));
        }
        t
    };
    let _embeddings = tch::no_grad(|| net.forward_tapped(&x, &mut apply_activation, &mut tap))?;
    Ok(sizes)
}

/// The deepest layer at least [`FINE_SIDE`]×[`FINE_SIDE`] in `sizes` (forward order).
pub fn finest_readable(sizes: &[(String, i64, i64)]) -> Option<&(String, i64, i64)> {
    sizes
        .iter()
        .rev()
        .find(|(_, h, w)| *h >= FINE_SIDE && *w >= FINE_SIDE)
}

/// A sentence for the page when one of `chosen` is coarser than [`FINE_SIDE`]×[`FINE_SIDE`]
/// at this input size, naming a finer layer (plain text: pages escape it).
pub fn coarse_note(chosen: &[String], sizes: &[(String, i64, i64)]) -> Option<String> {
    let coarse: Vec<&(String, i64, i64)> = chosen
        .iter()
        .filter_map(|c| sizes.iter().find(|(n, _, _)| n == c))
        .filter(|(_, h, w)| *h < FINE_SIDE || *w < FINE_SIDE)
        .collect();
    let (name, h, w) = coarse.first()?;
    let finer = match finest_readable(sizes) {
        Some((f, fh, fw)) => format!("a finer layer is {f} ({fh}×{fw}): try --layer {f}"),
        None => "no layer of this network is finer at this input size".to_string(),
    };
    Some(format!(
        "The CAM layer {name} is only {h}×{w} at this input size, so its maps are a few blurred blobs; {finer}."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, EmbeddingNet, HeadConfig};
    use tch::nn::VarStore;

    #[test]
    fn names_sizes_and_the_coarse_note_follow_torchvision() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let net = EmbeddingNet::new(&vs.root(), Arch::MobileNetV2, &HeadConfig::default());
        let names = net.layer_names();
        assert_eq!(names.len(), 19);
        assert_eq!(
            (names[0].as_str(), names[18].as_str()),
            ("features.0", "features.18")
        );
        let sizes = layer_sizes(&net, 64, 64, Device::Cpu).unwrap();
        let size = |n: &str| sizes.iter().find(|s| s.0 == n).map(|s| (s.1, s.2));
        assert_eq!(size("features.18"), Some((2, 2)));
        assert_eq!(size("features.14"), Some((2, 2)));
        assert_eq!(size("features.6"), Some((8, 8)));
        assert_eq!(
            finest_readable(&sizes).map(|s| s.0.as_str()),
            Some("features.6")
        );
        let note = coarse_note(&["features.18".to_string()], &sizes).unwrap();
        assert!(
            note.contains("2×2") && note.contains("features.6"),
            "{note}"
        );
        assert!(coarse_note(&["features.6".to_string()], &sizes).is_none());
        let err = check_layers(&net, &["layer4".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"layer4\"") && err.contains("features.14"),
            "{err}"
        );
        let vs = VarStore::new(Device::Cpu);
        let net = EmbeddingNet::new(&vs.root(), Arch::ResNet18, &HeadConfig::default());
        let names = net.layer_names();
        assert!(names.contains(&"layer3".to_string()) && names.contains(&"layer4.1".to_string()));
        assert_eq!(last_layer_name(&net), "layer4");
        check_layers(&net, &["layer3".to_string(), "layer4".to_string()]).unwrap();
    }

    /// Tapping the last layer gives the plain pass's activations and gradients.
    #[test]
    fn tapped_passes_agree_with_the_plain_pass() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let net = EmbeddingNet::new(&vs.root(), Arch::ResNet18, &HeadConfig::default());
        let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        let t = Tensor::randn([2, net.embedding_dim()], (Kind::Float, Device::Cpu));
        let score = |e: &Tensor| super::super::target::cosine_score(e, &t);
        let plain = layer_passes(&net, &x, &score, &[], true).unwrap();
        let names = ["layer3".to_string(), "layer4".to_string()];
        let tapped = layer_passes(&net, &x, &score, &names, true).unwrap();
        let (p, q) = (&plain.layers[0], &tapped.layers[1]);
        assert!(p.activations.allclose(&q.activations, 1e-5, 1e-6, false));
        assert!(p
            .grads()
            .unwrap()
            .allclose(q.grads().unwrap(), 1e-4, 1e-7, false));
        assert_eq!(tapped.layers[0].activations.size(), [2, 256, 4, 4]);
        assert_eq!(plain.dead, tapped.dead);
    }
}
