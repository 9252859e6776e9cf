//! Tests of the saliency methods on networks small enough to check by hand (f64, a few
//! pixels) and on every real backbone at a non-square size.

use super::gradcam::{channel_weights, gradcam, gradcam_maps};
use super::guided::{backprop_with_rule, display_maps, guided_backprop, BackwardRule};
use super::guided_gradcam::guided_gradcam;
use super::map::MapStatus;
use super::pair::{decompose, pair_maps};
use super::render::heat;
use super::saliency::{gradients, Explainable};
use super::target::cosine_score;
use super::transfer::{transfer_gradcam, WeightStore};
use super::vanilla::gradient_heat_maps;
use crate::model::{Activation, ActivationHook, Arch, EmbeddingNet, HeadConfig};
use crate::search::Distance;
use tch::{nn::VarStore, Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// conv 3×3 → act → conv 3×3 (last conv, A) → act → global mean → linear head, in f64,
/// optionally with the input multiplied by a fixed region mask first.
struct TinyNet {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    head: Tensor,
    act: Activation,
    mask: Option<Tensor>,
}

/// With random weights and a random target, ReLU(sum of weighted channels) can be
/// zero everywhere: a legitimate Zero map that would make these tests depend on the
/// draw. Negating a target negates its channel weights, so the map of -t is non-zero
/// wherever that of t is zero: flip the target of every image whose map came out Zero.
fn targets_with_live_cams(net: &dyn Explainable, x: &Tensor, t: &Tensor) -> Tensor {
    let (maps, _, _) = gradcam(net, x, &|e: &Tensor| cosine_score(e, t)).unwrap();
    let signs: Vec<f64> = maps
        .iter()
        .map(|m| {
            if m.status == MapStatus::Zero {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    t * Tensor::from_slice(&signs).to_kind(t.kind()).unsqueeze(1)
}

impl TinyNet {
    fn random(seed: i64, c1: i64, c2: i64, d: i64, act: Activation) -> TinyNet {
        tch::manual_seed(seed);
        TinyNet {
            w1: Tensor::randn([c1, 3, 3, 3], F64) * 0.4,
            b1: Tensor::randn([c1], F64) * 0.1,
            w2: Tensor::randn([c2, c1, 3, 3], F64) * 0.3,
            b2: Tensor::randn([c2], F64) * 0.1,
            head: Tensor::randn([d, c2], F64),
            act,
            mask: None,
        }
    }
}

impl Explainable for TinyNet {
    fn forward_explained(&self, x: &Tensor, hook: &mut ActivationHook<'_>) -> (Tensor, Tensor) {
        let x = match &self.mask {
            Some(m) => x * m,
            None => x.shallow_clone(),
        };
        let a1 = hook(
            &x.conv2d(&self.w1, Some(&self.b1), [1, 1], [1, 1], [1, 1], 1),
            self.act,
        );
        let a2 = hook(
            &a1.conv2d(&self.w2, Some(&self.b2), [1, 1], [1, 1], [1, 1], 1),
            self.act,
        );
        let p = a2.mean_dim([2i64, 3].as_slice(), false, None);
        (p.matmul(&self.head.tr()), a2)
    }
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    max_abs(&(a - b)) / max_abs(b).max(1e-30)
}

#[test]
fn gradcam_weights_are_the_spatial_mean_of_the_gradient() {
    tch::set_num_threads(1);
    let net = TinyNet::random(1, 4, 5, 3, Activation::Relu);
    let x = Tensor::randn([2, 3, 6, 7], F64);
    let t = Tensor::randn([2, 3], F64);
    let score = |e: &Tensor| cosine_score(e, &t);
    let g = gradients(&net, &x, &score, false).unwrap();
    // By hand: score = cos(e, t), e = W·mean(A) ⇒ ∂score/∂A_c(i) = (Wᵀ ∂cos/∂e)_c / (h·w)
    // at every location, with ∂cos/∂e = t/(|e||t|) − cos·e/|e|².
    let e = &g.embeddings;
    let (ne, nt) = (
        e.norm_scalaropt_dim(2.0, [1i64], true),
        t.norm_scalaropt_dim(2.0, [1i64], true),
    );
    let cos = (e * &t).sum_dim_intlist([1i64].as_slice(), true, None) / (&ne * &nt);
    let de = &t / (&ne * &nt) - &cos * e / (&ne * &ne);
    let expected = de.matmul(&net.head) / 42.0;
    let weights = channel_weights(&g.activation_grads);
    assert!(
        rel_err(&weights, &expected) < 1e-10,
        "weights {weights} vs {expected}"
    );
    // and the weights are literally the spatial mean of the gradient tensor.
    let mean = g
        .activation_grads
        .sum_dim_intlist([2i64, 3].as_slice(), false, None)
        / 42.0;
    assert!(rel_err(&weights, &mean) < 1e-12);
}

#[test]
fn maps_are_invariant_to_the_scale_of_the_score() {
    tch::set_num_threads(1);
    let net = TinyNet::random(2, 4, 6, 3, Activation::Relu);
    let x = Tensor::randn([2, 3, 8, 8], F64);
    let t = targets_with_live_cams(&net, &x, &Tensor::randn([2, 3], F64));
    let score = |e: &Tensor| cosine_score(e, &t);
    let scaled = |e: &Tensor| cosine_score(e, &t) * 37.5;
    let (a, _, _) = gradcam(&net, &x, &score).unwrap();
    let (b, _, _) = gradcam(&net, &x, &scaled).unwrap();
    for (m, n) in a.iter().zip(&b) {
        assert_eq!(m.status, MapStatus::Ok);
        let d = m
            .values
            .iter()
            .zip(&n.values)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(
            d < 1e-5,
            "Grad-CAM maps differ by {d} when the score is scaled"
        );
    }
    // Guided backprop scales linearly with the score; its display divides by std + 1e-5
    // (the reference's guard), so it is invariant up to that guard's share of the std.
    let gv = guided_backprop(&net, &x, &score).unwrap().input_grads;
    let gs = guided_backprop(&net, &x, &scaled).unwrap().input_grads;
    assert!(rel_err(&gs, &(&gv * 37.5)) < 1e-12);
    let std = gv.std(false).double_value(&[]);
    let (va, vb) = (
        display_maps(&gv, &[false; 2]).unwrap(),
        display_maps(&gs, &[false; 2]).unwrap(),
    );
    for (m, n) in va.iter().zip(&vb) {
        let d = m
            .values
            .iter()
            .zip(&n.values)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max) as f64;
        // |Δ| ≤ 0.1·|x − mean|/std · 1e-5/std, and |x − mean|/std ≤ √n.
        assert!(
            d <= 0.1 * (m.values.len() as f64).sqrt() * 1e-5 / std + 1e-6,
            "guided displays differ by {d} (std {std})"
        );
    }
}

#[test]
fn vanilla_backprop_matches_finite_differences() {
    tch::set_num_threads(1);
    for act in [Activation::Relu, Activation::Relu6] {
        let net = TinyNet::random(3, 3, 4, 3, act);
        let x = Tensor::randn([1, 3, 5, 4], F64);
        let t = Tensor::randn([1, 3], F64);
        let score = |e: &Tensor| cosine_score(e, &t);
        let g = gradients(&net, &x, &score, true)
            .unwrap()
            .input_grads
            .unwrap();
        let f = |x: &Tensor| {
            tch::no_grad(|| {
                score(
                    &net.forward_explained(x, &mut crate::model::layers::apply_activation)
                        .0,
                )
            })
            .double_value(&[0])
        };
        let eps = 1e-6;
        let flat = x.flatten(0, -1);
        let mut fd = vec![0.0; flat.size()[0] as usize];
        for (i, v) in fd.iter_mut().enumerate() {
            let (p, m) = (flat.copy(), flat.copy());
            let _ = p.get(i as i64).g_add_scalar_(eps);
            let _ = m.get(i as i64).g_add_scalar_(-eps);
            *v = (f(&p.view_as(&x)) - f(&m.view_as(&x))) / (2.0 * eps);
        }
        let fd = Tensor::from_slice(&fd).view_as(&x);
        assert!(
            rel_err(&g, &fd) < 1e-6,
            "{act:?}: autograd vs finite differences {}",
            rel_err(&g, &fd)
        );
        // The segmented walk with the activations' own derivative is the same gradient.
        let walk = backprop_with_rule(&net, &x, &score, BackwardRule::Plain).unwrap();
        assert_eq!(walk.segments, 2);
        assert!(rel_err(&walk.input_grads, &fd) < 1e-6);
    }
}

#[test]
fn guided_equals_plain_when_the_rule_does_not_bite() {
    tch::set_num_threads(1);
    for act in [Activation::Relu, Activation::Relu6] {
        // Positive weights, inputs and head, score = sum of the embedding: every
        // pre-activation is in (0, 6) and every backward signal is positive.
        let mut net = TinyNet::random(4, 3, 4, 2, act);
        net.w1 = net.w1.abs() * 0.1;
        net.b1 = net.b1.abs();
        net.w2 = net.w2.abs() * 0.1;
        net.b2 = net.b2.abs();
        net.head = net.head.abs();
        let x = Tensor::rand([2, 3, 5, 6], F64);
        let score = |e: &Tensor| e.sum_dim_intlist([1i64].as_slice(), false, None);
        let guided = guided_backprop(&net, &x, &score).unwrap().input_grads;
        let plain = gradients(&net, &x, &score, true)
            .unwrap()
            .input_grads
            .unwrap();
        assert!(rel_err(&guided, &plain) < 1e-12, "{act:?}");
    }
}

#[test]
fn guided_differs_from_the_gradient_where_the_rule_bites() {
    tch::set_num_threads(1);
    for act in [Activation::Relu, Activation::Relu6] {
        let mut net = TinyNet::random(5, 4, 5, 3, act);
        if act == Activation::Relu6 {
            // Push some pre-activations above 6 so the upper bound of the mask matters.
            net.w1 = &net.w1 * 8.0;
        }
        let x = Tensor::randn([1, 3, 6, 6], F64);
        let t = Tensor::randn([1, 3], F64);
        let score = |e: &Tensor| cosine_score(e, &t);
        let guided = guided_backprop(&net, &x, &score).unwrap().input_grads;
        let plain = gradients(&net, &x, &score, true)
            .unwrap()
            .input_grads
            .unwrap();
        assert!(
            rel_err(&guided, &plain) > 1e-2,
            "{act:?}: the rule changed nothing"
        );
        // The rule by hand: R2 = relu(∂s/∂a2)·mask(z2), R1 = relu(convᵀ(R2))·mask(z1), x̄ = convᵀ(R1).
        let z1 = x.conv2d(&net.w1, Some(&net.b1), [1, 1], [1, 1], [1, 1], 1);
        let a1 = act.apply(&z1);
        let z2 = a1.conv2d(&net.w2, Some(&net.b2), [1, 1], [1, 1], [1, 1], 1);
        let a2 = act.apply(&z2).detach().set_requires_grad(true);
        let e = a2
            .mean_dim([2i64, 3].as_slice(), false, None)
            .matmul(&net.head.tr());
        let ds =
            Tensor::run_backward(&[score(&e).sum(Kind::Double)], &[&a2], false, false).remove(0);
        let r2 = ds.relu() * act.grad_mask(&z2);
        let back = |r: &Tensor, w: &Tensor| {
            r.conv_transpose2d(w, None::<&Tensor>, [1, 1], [1, 1], [0, 0], 1, [1, 1])
        };
        let r1 = back(&r2, &net.w2).relu() * act.grad_mask(&z1);
        let expected = back(&r1, &net.w1);
        assert!(
            rel_err(&guided, &expected) < 1e-10,
            "{act:?}: guided {}",
            rel_err(&guided, &expected)
        );
    }
}

#[test]
fn grad_cam_peaks_in_the_only_region_that_can_change_the_embedding() {
    tch::set_num_threads(1);
    let (h, w) = (16, 16);
    let mut net = TinyNet::random(6, 6, 8, 4, Activation::Relu);
    // Only the lower-left quadrant reaches the network; no biases, so elsewhere A = 0.
    let mask = Tensor::zeros([1, 1, h, w], F64);
    let _ = mask.narrow(2, 8, 8).narrow(3, 0, 8).fill_(1.0);
    net.mask = Some(mask);
    net.b1 = net.b1.zeros_like();
    net.b2 = net.b2.zeros_like();
    let x = Tensor::randn([3, 3, h, w], F64);
    let other = Tensor::randn([3, 3, h, w], F64);
    let t = tch::no_grad(|| {
        net.forward_explained(&other, &mut crate::model::layers::apply_activation)
            .0
    });
    let t = targets_with_live_cams(&net, &x, &t);
    let score = |e: &Tensor| cosine_score(e, &t);
    let (maps, _, _) = gradcam(&net, &x, &score).unwrap();
    for m in &maps {
        assert_eq!(m.status, MapStatus::Ok);
        let (r, c) = m.argmax();
        // The region, grown by the two 3×3 convolutions' reach.
        assert!(r >= 6 && c <= 9, "peak at ({r}, {c}), outside the region");
        let mean = |inside: bool| {
            let v: Vec<f32> = (0..h as usize * w as usize)
                .filter(|i| ((i / 16) >= 8 && (i % 16) < 8) == inside)
                .map(|i| m.values[i])
                .collect();
            v.iter().sum::<f32>() / v.len() as f32
        };
        assert!(
            mean(true) > 5.0 * mean(false),
            "inside {} vs outside {}",
            mean(true),
            mean(false)
        );
    }
}

#[test]
fn a_dead_target_gives_labelled_zero_maps_not_noise() {
    tch::set_num_threads(1);
    let vs = VarStore::new(Device::Cpu);
    let net = EmbeddingNet::new(
        &vs.root(),
        Arch::ResNet18,
        &HeadConfig {
            embedding_dim: 16,
            ..Default::default()
        },
    );
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    // The target is each image's own embedding: cos = 1 is a maximum, the gradient vanishes.
    let own = tch::no_grad(|| net.forward_t(&x, false));
    let score = |e: &Tensor| cosine_score(e, &own);
    let g = gradients(&net, &x, &score, true).unwrap();
    assert!(
        g.dead().iter().all(|&d| d),
        "sensitivity {:?}",
        g.sensitivity
    );
    let (cams, _) = gradcam_maps(&g, 32, 32).unwrap();
    let vanilla = gradient_heat_maps(g.input_grads.as_ref().unwrap(), &g.dead()).unwrap();
    let rg = guided_backprop(&net, &x, &score).unwrap();
    let guided = display_maps(&rg.input_grads, &super::guided::dead_images(&rg)).unwrap();
    let (_, ggc) = guided_gradcam(&rg.input_grads, &cams, &g.dead()).unwrap();
    for m in cams.iter().chain(&vanilla).chain(&guided).chain(&ggc) {
        assert_eq!(m.status, MapStatus::Zero);
        assert!(m.values.iter().all(|&v| v == 0.0));
        let png = heat(m).unwrap();
        let first = *png.get_pixel(0, 0);
        assert!(
            png.pixels().all(|p| *p == first),
            "a degenerate map must render flat"
        );
    }
    // A NaN input is reported, and nothing non-finite is left in the map.
    let nan = Tensor::full([1, 3, 32, 32], f64::NAN, (Kind::Float, Device::Cpu));
    let t = Tensor::randn([1, 16], (Kind::Float, Device::Cpu));
    let score = |e: &Tensor| cosine_score(e, &t);
    let (maps, _, _) = gradcam(&net, &nan, &score).unwrap();
    assert!(maps[0].status == MapStatus::NonFinite || maps[0].status == MapStatus::Zero);
    assert!(maps[0].values.iter().all(|v| v.is_finite()));
}

// About 80 lines: one pass over every backbone checks all six methods on the same gradients.
#[test]
fn every_backbone_gives_input_sized_unit_maps_at_a_non_square_size() {
    tch::set_num_threads(1);
    let (h, w) = (40, 56);
    for arch in Arch::ALL {
        let vs = VarStore::new(Device::Cpu);
        let cfg = HeadConfig {
            embedding_dim: 8,
            skip_connection: arch == Arch::ResNet18,
            ..Default::default()
        };
        let net = EmbeddingNet::new(&vs.root(), arch, &cfg);
        let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
        let t = Tensor::randn([2, 8], (Kind::Float, Device::Cpu));
        let t = targets_with_live_cams(&net, &x, &t);
        let score = |e: &Tensor| cosine_score(e, &t);
        let g = gradients(&net, &x, &score, true).unwrap();
        let (cams, weights) = gradcam_maps(&g, h, w).unwrap();
        let vanilla = gradient_heat_maps(g.input_grads.as_ref().unwrap(), &g.dead()).unwrap();
        // The segmented walk reproduces autograd through residual blocks and ReLU6 too.
        let walk = backprop_with_rule(&net, &x, &score, BackwardRule::Plain).unwrap();
        let err = rel_err(&walk.input_grads, g.input_grads.as_ref().unwrap());
        assert!(
            err < 1e-4,
            "{arch}: segmented plain walk differs from autograd by {err:e}"
        );
        let rg = guided_backprop(&net, &x, &score).unwrap();
        let guided = display_maps(&rg.input_grads, &[false; 2]).unwrap();
        let (_, ggc) = guided_gradcam(&rg.input_grads, &cams, &[false; 2]).unwrap();
        // Transfer from a store holding only the image's own weights (k = 1): exactly
        // Grad-CAM's map (random-weight embeddings of two images can be near-identical,
        // so each image gets a store of its own).
        let transfer: Vec<_> = (0..2i64)
            .map(|i| {
                let store = WeightStore {
                    embeddings: g.embeddings.narrow(0, i, 1),
                    weights: weights.narrow(0, i, 1),
                    labels: Tensor::zeros([1], (Kind::Int64, Device::Cpu)),
                    indices: Tensor::zeros([1], (Kind::Int64, Device::Cpu)),
                };
                transfer_gradcam(&net, &x.narrow(0, i, 1), &store, 1, Distance::Cosine)
                    .unwrap()
                    .0
                    .remove(0)
            })
            .collect();
        let terms = decompose(&g.activations, &g.activations.flip([0i64]));
        let pairs = pair_maps(&terms.query, h, w).unwrap();
        for (name, maps, channels) in [
            ("gradcam", &cams, 1),
            ("vanilla", &vanilla, 1),
            ("guided", &guided, 3),
            ("guided_gradcam", &ggc, 3),
            ("transfer", &transfer, 1),
            ("pair", &pairs, 1),
        ] {
            for m in maps {
                assert_eq!(
                    (m.channels, m.height, m.width),
                    (channels, h as usize, w as usize),
                    "{arch} {name}"
                );
                assert!(
                    m.values.iter().all(|v| (0.0..=1.0).contains(v)),
                    "{arch} {name}: values outside [0, 1]"
                );
                assert_eq!(m.status, MapStatus::Ok, "{arch} {name}");
            }
        }
        for (a, b) in cams.iter().zip(&transfer) {
            let d = a
                .values
                .iter()
                .zip(&b.values)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            assert!(
                d < 1e-4,
                "{arch}: transfer with its own weights differs from Grad-CAM by {d}"
            );
        }
    }
}

#[test]
fn pair_terms_sum_to_the_pooled_cosine() {
    // By hand, one channel pair of 1×2 and 1×1 maps: A_q = [[1, 3]] (2 channels at 2
    // locations), A_n = [2, 0]: p_q = (2, 2)... see below.
    let a_q = Tensor::from_slice(&[1.0f64, 3.0, 2.0, 2.0]).view([1, 2, 1, 2]); // channel 0: [1, 3], channel 1: [2, 2]
    let a_n = Tensor::from_slice(&[2.0f64, 0.0]).view([1, 2, 1, 1]);
    let t = decompose(&a_q, &a_n);
    // p_q = (2, 2), p_n = (2, 0): cos = 4 / (√8·2) = 1/√2; query terms A_q(i)·p_n/(2·√8·2) = (2, 6)/(4√8).
    let c = t.cosine.double_value(&[0]);
    assert!((c - 0.5f64.sqrt()).abs() < 1e-12);
    let q: Vec<f64> = Vec::try_from(t.query.flatten(0, -1)).unwrap();
    assert!(
        (q[0] - 2.0 / (4.0 * 8f64.sqrt())).abs() < 1e-12
            && (q[1] - 6.0 / (4.0 * 8f64.sqrt())).abs() < 1e-12
    );
    assert!((t.neighbour.double_value(&[0, 0, 0]) - c).abs() < 1e-12);
    // Random pairs of different sizes: each side's terms sum to the cosine.
    let a = Tensor::rand([3, 7, 4, 5], F64);
    let b = Tensor::rand([3, 7, 2, 3], F64);
    let t = decompose(&a, &b);
    let sq = t.query.sum_dim_intlist([1i64, 2].as_slice(), false, None);
    let sn = t
        .neighbour
        .sum_dim_intlist([1i64, 2].as_slice(), false, None);
    assert!(rel_err(&sq, &t.cosine) < 1e-12 && rel_err(&sn, &t.cosine) < 1e-12);
}
