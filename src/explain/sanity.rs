//! The model-parameter randomisation test (Adebayo et al. 2018; docs/REFERENCE.md,
//! "Sanity check: cascading randomisation"): the network's blocks are re-initialised one
//! at a time from the top (the embedding head) down, cumulatively, and at each depth every
//! method's map is compared with its map from the trained network by Spearman rank
//! correlation. A map that explains the *model* must change when the model is destroyed;
//! one that barely changes shows the input (edges), not what the network learnt.
//!
//! The weights are changed in place in the phase's var store and restored, bit for bit,
//! when the check ends ([`Snapshot`]); nothing is written to the run.

use super::explainer::{ExplainOptions, Explainer, Forward, Scene};
use super::faithfulness::relevance;
use super::map::MapStatus;
use super::method::SaliencyMethod;
use crate::data::rng::Rng;
use anyhow::Result;
use std::collections::BTreeMap;
use tch::{nn::VarStore, Tensor};

/// A method passes when its mean rank correlation with the trained map, once every block
/// is re-initialised, is below this. Adebayo et al. report guided backprop staying highly
/// rank-correlated (well above 0.5) with its trained map while gradient and Grad-CAM maps
/// fall towards 0: a map still ranking pixels half like the trained one after every
/// weight is random is mostly a function of the image.
pub const PASS_BELOW: f64 = 0.5;

/// The re-initialisation blocks of a network's variables, in cascade order (top first):
/// the head (`head`), then each backbone block from the last to the first — a block is
/// `<stage>.<n>` (`layer4.1`, `features.17`) — then the stem (`conv1`, `bn1`, …).
pub fn cascade_blocks<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(String, Vec<String>)> {
    let mut blocks: BTreeMap<(u8, u64, u64, String), Vec<String>> = BTreeMap::new();
    for name in names {
        blocks
            .entry(block_key(name))
            .or_default()
            .push(name.to_string());
    }
    blocks
        .into_iter()
        .rev()
        .map(|((_, _, _, label), mut vars)| {
            vars.sort();
            (label, vars)
        })
        .collect()
}

/// Sort key of a variable's block in forward order: (0 stem | 1 stage | 2 head, stage
/// number, block number, label).
fn block_key(name: &str) -> (u8, u64, u64, String) {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.first() == Some(&"head") {
        return (2, 0, 0, "head".into());
    }
    let rest = if parts.first() == Some(&"backbone") {
        &parts[1..]
    } else {
        &parts[..]
    };
    let stage = rest.first().copied().unwrap_or("");
    match rest.get(1).and_then(|b| b.parse::<u64>().ok()) {
        Some(block) => {
            let digits: String = stage.chars().filter(char::is_ascii_digit).collect();
            let number = digits.parse().unwrap_or(0);
            (1, number, block, format!("{stage}.{block}"))
        }
        None => (0, 0, 0, "stem".into()),
    }
}

/// A fresh value for variable `name` shaped like `t`: the usual initialisation (weights of
/// convolutions and linear layers N(0, 2/fan_in); BatchNorm scale 1, shift 0, running
/// statistics 0 and 1; biases 0). The counter of batches is kept.
fn fresh(name: &str, t: &Tensor, rng: &mut Rng) -> Option<Tensor> {
    let size = t.size();
    let opts = (t.kind(), t.device());
    let last = name.rsplit('.').next().unwrap_or("");
    Some(match (last, size.len()) {
        ("num_batches_tracked", _) => return None,
        ("running_var", _) | ("weight", 1) => Tensor::ones(&size, opts),
        ("weight", _) => {
            let fan_in: i64 = size[1..].iter().product();
            let sd = (2.0 / fan_in.max(1) as f64).sqrt();
            let n: i64 = size.iter().product();
            let v: Vec<f32> = (0..n).map(|_| (sd * rng.normal()) as f32).collect();
            Tensor::from_slice(&v)
                .view(size.as_slice())
                .to_kind(t.kind())
                .to_device(t.device())
        }
        _ => Tensor::zeros(&size, opts),
    })
}

/// The var store's values as they were; restored when dropped.
pub struct Snapshot<'a> {
    vs: &'a VarStore,
    saved: Vec<(String, Tensor)>,
}

impl<'a> Snapshot<'a> {
    /// Copies every variable of `vs`.
    pub fn take(vs: &'a VarStore) -> Snapshot<'a> {
        let saved = vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.detach().copy()))
            .collect();
        Snapshot { vs, saved }
    }

    /// Re-initialises the variables `names` (see [`fresh`]).
    pub fn randomise(&self, names: &[String], rng: &mut Rng) {
        let vars = self.vs.variables();
        tch::no_grad(|| {
            for name in names {
                if let Some(mut t) = vars.get(name).map(Tensor::shallow_clone) {
                    if let Some(v) = fresh(name, &t, rng) {
                        t.copy_(&v);
                    }
                }
            }
        });
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let vars = self.vs.variables();
        tch::no_grad(|| {
            for (name, value) in &self.saved {
                if let Some(mut t) = vars.get(name).map(Tensor::shallow_clone) {
                    t.copy_(value);
                }
            }
        });
    }
}

/// Spearman rank correlation of two equally long lists (average ranks for ties); 0 when
/// either is constant (a map that became flat has no ranking left to agree with).
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len().min(rb.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

/// Ranks 1..n of `v`, ties sharing their average rank.
fn ranks(v: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// One method's cascade: the mean correlation over the images at each depth.
#[derive(Debug, Clone)]
pub struct Cascade {
    /// The method's name.
    pub method: String,
    /// Per depth (the blocks re-initialised so far, top first): per image, the Spearman
    /// correlation of the map with the trained one (NaN where the trained map is flat).
    pub correlations: Vec<Vec<f64>>,
}

/// Mean of the finite values (NaN when none).
pub fn finite_mean(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        f64::NAN
    } else {
        f.iter().sum::<f64>() / f.len() as f64
    }
}

/// Per method of `trained` (maps by method name, per image of `scene`): the cascade of
/// correlations, block by block, with the weights restored at the end. Returns the block
/// labels in cascade order too.
pub fn cascading_randomisation(
    explainer: &Explainer<'_>,
    scene: &Scene,
    methods: &[&'static dyn SaliencyMethod],
    trained: &[BTreeMap<String, super::map::SaliencyMap>],
    opts: &ExplainOptions,
    seed: u64,
) -> Result<(Vec<String>, Vec<Cascade>)> {
    let vs = &explainer.pm.model.vs;
    // The network's own variables (a loss's proxies or classifier map no image).
    let names: Vec<String> = vs
        .variables()
        .into_keys()
        .filter(|n| n.starts_with("backbone.") || n.starts_with("head."))
        .collect();
    let blocks = cascade_blocks(names.iter().map(String::as_str));
    let snapshot = Snapshot::take(vs);
    let mut rng = Rng::new(seed);
    let mut cascades: Vec<Cascade> = methods
        .iter()
        .map(|m| Cascade {
            method: m.info().name.to_string(),
            correlations: Vec::new(),
        })
        .collect();
    for (_, vars) in &blocks {
        snapshot.randomise(vars, &mut rng);
        let forward: Forward = explainer.forward(&scene.inputs.tensor);
        let out = explainer.run_methods(scene, &forward, methods, opts)?;
        for (m, cascade) in methods.iter().zip(cascades.iter_mut()) {
            let name = m.info().name;
            let row = trained
                .iter()
                .zip(&out.maps)
                .map(|(t, r)| match (t.get(name), r.get(name)) {
                    (Some(t), Some(r)) if t.status == MapStatus::Ok => {
                        spearman(&relevance(t), &relevance(r))
                    }
                    _ => f64::NAN,
                })
                .collect();
            cascade.correlations.push(row);
        }
    }
    drop(snapshot);
    let labels = blocks.into_iter().map(|(l, _)| l).collect();
    Ok((labels, cascades))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, EmbeddingNet, HeadConfig};
    use tch::Device;

    #[test]
    fn spearman_matches_hand_computed_values() {
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Ranks (1, 2, 3, 4) and (2, 1, 4, 3): 1 − 6·Σd²/(n(n²−1)) = 1 − 6·4/60 = 0.6.
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[2.0, 1.0, 4.0, 3.0]) - 0.6).abs() < 1e-12);
        // Ties share the mean rank: (1.5, 1.5, 3) against (1, 2, 3) gives √3/2.
        let r = spearman(&[5.0, 5.0, 7.0], &[1.0, 2.0, 3.0]);
        assert!((r - 0.75f64.sqrt()).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
    }

    #[test]
    fn blocks_cascade_from_the_head_down_and_weights_come_back() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let _net = EmbeddingNet::new(&vs.root(), Arch::ResNet18, &HeadConfig::default());
        let names: Vec<String> = vs.variables().into_keys().collect();
        let blocks = cascade_blocks(names.iter().map(String::as_str));
        let labels: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "head", "layer4.1", "layer4.0", "layer3.1", "layer3.0", "layer2.1", "layer2.0",
                "layer1.1", "layer1.0", "stem"
            ]
        );
        assert!(blocks[9].1.contains(&"backbone.conv1.weight".to_string()));
        assert_eq!(blocks.iter().map(|b| b.1.len()).sum::<usize>(), names.len());
        let before = vs.variables()["backbone.layer4.1.conv2.weight"].copy();
        let stem = vs.variables()["backbone.conv1.weight"].copy();
        {
            let snap = Snapshot::take(&vs);
            snap.randomise(&blocks[1].1, &mut Rng::new(4));
            let now = &vs.variables()["backbone.layer4.1.conv2.weight"];
            assert!(!now.equal(&before), "layer4.1 was not re-initialised");
            // N(0, 2/fan_in): fan_in = 512·3·3.
            let sd = now.std(true).double_value(&[]);
            assert!((sd - (2.0f64 / 4608.0).sqrt()).abs() < 0.002, "sd {sd}");
            assert!(vs.variables()["backbone.conv1.weight"].equal(&stem));
            let rv = &vs.variables()["backbone.layer4.1.bn2.running_var"];
            assert!(rv.equal(&Tensor::ones_like(rv)));
        }
        assert!(vs.variables()["backbone.layer4.1.conv2.weight"].equal(&before));
    }
}
