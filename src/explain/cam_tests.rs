//! The CAM family against pytorch-grad-cam 1.5: `testdata/cam_parity.safetensors`, made
//! by `scripts/make-cam-fixtures.py`, holds a small network's weights, two images, their
//! similarity targets and grad-cam's map of each method; the Rust method, driven through
//! the same chunk pipeline as `dmlviz explain`, must match within 1e-4. Then every method
//! on every real backbone gives input-sized maps in [0, 1].

use super::chunk::explain_tensor;
use super::explainer::ExplainOptions;
use super::method::{MethodOutput, SaliencyMethod};
use super::registry::find;
use super::saliency::Explainable;
use super::MapStatus;
use crate::model::{Activation, ActivationHook, Arch, EmbeddingNet, HeadConfig, LayerTap};
use crate::tensor_io::read_safetensors;
use std::collections::HashMap;
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

const FIXTURE: &str = "src/explain/testdata/cam_parity.safetensors";
const TOLERANCE: f32 = 1e-4;

/// The fixture's network: three conv + ReLU blocks (strides 1, 2, 2), global mean, linear.
struct ParityNet {
    blocks: Vec<(Tensor, Tensor, i64)>,
    head: (Tensor, Tensor),
}

impl ParityNet {
    fn from(f: &HashMap<String, Tensor>) -> ParityNet {
        let blocks = (1..=3)
            .map(|i| {
                let stride = if i == 1 { 1 } else { 2 };
                let w = f[&format!("block{i}_0_weight")].shallow_clone();
                (w, f[&format!("block{i}_0_bias")].shallow_clone(), stride)
            })
            .collect();
        let head = (
            f["head_weight"].shallow_clone(),
            f["head_bias"].shallow_clone(),
        );
        ParityNet { blocks, head }
    }
}

impl Explainable for ParityNet {
    fn forward_explained(&self, x: &Tensor, hook: &mut ActivationHook<'_>) -> (Tensor, Tensor) {
        let mut last = None;
        let mut tap = |name: &str, t: Tensor| {
            if name == "block3" {
                last = Some(t.shallow_clone());
            }
            t
        };
        let e = self.forward_tapped(x, hook, &mut tap).unwrap();
        (e, last.unwrap())
    }

    fn layer_names(&self) -> Vec<String> {
        (1..=3).map(|i| format!("block{i}")).collect()
    }

    fn forward_tapped(
        &self,
        x: &Tensor,
        hook: &mut ActivationHook<'_>,
        tap: &mut LayerTap<'_>,
    ) -> anyhow::Result<Tensor> {
        let mut y = x.shallow_clone();
        for (i, (w, b, s)) in self.blocks.iter().enumerate() {
            let z = y.conv2d(w, Some(b), [*s, *s], [1, 1], [1, 1], 1);
            y = tap(&format!("block{}", i + 1), hook(&z, Activation::Relu));
        }
        let pooled = y.mean_dim([2i64, 3].as_slice(), false, None);
        Ok(pooled.linear(&self.head.0, Some(&self.head.1)))
    }
}

fn fixture() -> HashMap<String, Tensor> {
    read_safetensors(Path::new(FIXTURE))
        .unwrap()
        .into_iter()
        .collect()
}

/// Runs `methods` on images `x` against `targets` through the explain driver's chunk.
fn explain(
    net: &dyn Explainable,
    x: &Tensor,
    targets: &Tensor,
    methods: &[&'static dyn SaliencyMethod],
    opts: &ExplainOptions,
) -> MethodOutput {
    explain_tensor(net, x, targets, methods, opts).unwrap()
}

/// Largest |Rust − grad-cam| over both images' maps of `method`.
fn max_diff(out: &MethodOutput, method: &str, reference: &Tensor) -> f32 {
    let mut worst = 0.0f32;
    for (i, maps) in out.maps.iter().enumerate() {
        let m = &maps[method];
        assert_eq!(m.status, MapStatus::Ok, "{method} image {i}");
        let r: Vec<f32> = Vec::try_from(reference.get(i as i64).flatten(0, -1)).unwrap();
        assert_eq!(r.len(), m.values.len());
        for (p, q) in m.values.iter().zip(&r) {
            worst = worst.max((p - q).abs());
        }
    }
    worst
}

fn method(key: &str) -> &'static dyn SaliencyMethod {
    find(key).unwrap_or_else(|| panic!("{key} is not registered"))
}

#[test]
fn every_cam_matches_pytorch_grad_cam() {
    tch::set_num_threads(1);
    let f = fixture();
    let net = ParityNet::from(&f);
    let (x, t) = (&f["x"], &f["targets"]);
    let names = [
        "gradcam",
        "gradcam_pp",
        "xgradcam",
        "hirescam",
        "layercam",
        "scorecam",
        "ablationcam",
        "eigencam",
    ];
    let methods: Vec<_> = names.iter().map(|n| method(n)).collect();
    // A batch size that divides neither channel count: batching changes speed only.
    let opts = ExplainOptions {
        batch_size: 3,
        ..Default::default()
    };
    let out = explain(&net, x, t, &methods, &opts);
    for name in names {
        let d = max_diff(&out, name, &f[&format!("map_{name}")]);
        eprintln!("{name}: max |dmlviz - grad-cam| = {d:.2e}");
        assert!(
            d < TOLERANCE,
            "{name}: max difference {d} from pytorch-grad-cam"
        );
    }
    // Score-CAM and Ablation-CAM do not depend on the batch size.
    let batched: Vec<_> = ["scorecam", "ablationcam"]
        .iter()
        .map(|n| method(n))
        .collect();
    let one = ExplainOptions {
        batch_size: 1,
        ..Default::default()
    };
    let single = explain(&net, x, t, &batched, &one);
    for name in ["scorecam", "ablationcam"] {
        for i in 0..2 {
            assert_eq!(
                single.maps[i][name].values.len(),
                out.maps[i][name].values.len()
            );
            let d = single.maps[i][name]
                .values
                .iter()
                .zip(&out.maps[i][name].values)
                .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            // Another batch size is another GEMM blocking, so f32 rounding moves
            // (2.3e-6 on an AVX-512 CPU); a wrong batching would move maps by far more.
            assert!(d < 1e-5, "{name}: batch size changed the map by {d}");
        }
    }
}

#[test]
fn layers_and_smoothing_match_pytorch_grad_cam() {
    tch::set_num_threads(1);
    let f = fixture();
    let net = ParityNet::from(&f);
    let (x, t) = (&f["x"], &f["targets"]);
    let gradcam = [method("gradcam")];
    let layers = |names: &[&str]| ExplainOptions {
        layers: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let cases: [(&str, &str, ExplainOptions); 4] = [
        (
            "gradcam",
            "map_gradcam_two_layers",
            layers(&["block2", "block3"]),
        ),
        (
            "gradcam",
            "map_gradcam_aug",
            ExplainOptions {
                aug_smooth: true,
                ..Default::default()
            },
        ),
        (
            "gradcam",
            "map_gradcam_eigen",
            ExplainOptions {
                eigen_smooth: true,
                ..Default::default()
            },
        ),
        ("layercam", "map_layercam_block2", layers(&["block2"])),
    ];
    // Gradient methods at block2, where the gradient varies over locations (at the last
    // conv HiResCAM and XGrad-CAM equal Grad-CAM).
    for name in ["gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam"] {
        let out = explain(&net, x, t, &[method(name)], &layers(&["block2"]));
        let d = max_diff(&out, name, &f[&format!("map_{name}_block2")]);
        eprintln!("{name} at block2: max |dmlviz - grad-cam| = {d:.2e}");
        assert!(
            d < TOLERANCE,
            "{name} at block2: max difference {d} from pytorch-grad-cam"
        );
        if name != "gradcam" {
            let gc = explain(&net, x, t, &[method("gradcam")], &layers(&["block2"]));
            assert!(
                max_diff(&gc, "gradcam", &f[&format!("map_{name}_block2")]) > 1e-3,
                "{name}"
            );
        }
    }
    for (name, key, opts) in cases {
        let m = if name == "gradcam" {
            gradcam[0]
        } else {
            method(name)
        };
        let out = explain(&net, x, t, &[m], &opts);
        let d = max_diff(&out, name, &f[key]);
        eprintln!("{key}: max |dmlviz - grad-cam| = {d:.2e}");
        assert!(
            d < TOLERANCE,
            "{key}: max difference {d} from pytorch-grad-cam"
        );
    }
    // Naming the last layer is the default.
    let named = explain(&net, x, t, &gradcam, &layers(&["block3"]));
    assert!(max_diff(&named, "gradcam", &f["map_gradcam"]) < TOLERANCE);
}

#[test]
fn the_random_baseline_is_reproducible_and_in_range() {
    tch::set_num_threads(1);
    let f = fixture();
    let net = ParityNet::from(&f);
    let (x, t) = (&f["x"], &f["targets"]);
    let random = [method("random")];
    let a = explain(&net, x, t, &random, &ExplainOptions::default());
    let b = explain(&net, x, t, &random, &ExplainOptions::default());
    let gradcam = explain(&net, x, t, &[method("gradcam")], &ExplainOptions::default());
    for i in 0..2 {
        let (p, q) = (&a.maps[i]["random"], &b.maps[i]["random"]);
        assert_eq!(p, q);
        assert!(p.values.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_ne!(p.values, gradcam.maps[i]["gradcam"].values);
    }
    // Two images, two draws.
    assert_ne!(a.maps[0]["random"].values, a.maps[1]["random"].values);
}

/// Every CAM method on every backbone, at a non-square size and a named layer: input-sized
/// maps in [0, 1]. (Score-CAM and Ablation-CAM, one forward pass per channel, skip
/// ResNet50's 2048 channels to keep the test fast.)
#[test]
fn every_cam_runs_on_every_backbone() {
    tch::set_num_threads(1);
    let light = [
        "gradcam_pp",
        "xgradcam",
        "hirescam",
        "layercam",
        "eigencam",
        "random",
    ];
    for (arch, layer, heavy) in [
        (Arch::ResNet18, "layer3", true),
        (Arch::ResNet50, "layer4", false),
        (Arch::MobileNetV2, "features.13", true),
    ] {
        let mut names = light.to_vec();
        if heavy {
            names.extend(["scorecam", "ablationcam"]);
        }
        let methods: Vec<_> = names.iter().map(|n| method(n)).collect();
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let net = EmbeddingNet::new(&vs.root(), arch, &HeadConfig::default());
        let x = Tensor::randn([1, 3, 32, 64], (Kind::Float, Device::Cpu));
        let t = Tensor::randn([1, net.embedding_dim()], (Kind::Float, Device::Cpu));
        let opts = ExplainOptions {
            batch_size: 128,
            layers: vec![layer.to_string()],
            ..Default::default()
        };
        let out = explain(&net, &x, &t, &methods, &opts);
        for name in names {
            let m = &out.maps[0][name];
            assert_eq!((m.height, m.width), (32, 64), "{arch} {name}");
            assert!(
                m.values.iter().all(|v| (0.0..=1.0).contains(v)),
                "{arch} {name}"
            );
        }
    }
}
