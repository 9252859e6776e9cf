//! Faithfulness on networks whose true relevance is known, and on cases small enough to
//! compute by hand.

use super::deletion::{auc, blur, curves, share_masks};
use super::region_drop::drop_and_increase;
use super::road::{impute, percentile, removed_at};
use super::*;
use crate::explain::gradcam::gradcam;
use crate::explain::map::MapStatus;
use crate::explain::target::cosine_score;
use crate::model::ActivationHook;

/// A network whose embedding is the pixels of one region (zero elsewhere): only that
/// region can matter to any score of it. Its "last conv" is the masked image itself.
struct RegionNet {
    mask: Tensor,
}

impl RegionNet {
    /// The region: rows `r0..r1`, columns `c0..c1` of an `h`×`w` image.
    fn new(h: i64, w: i64, rows: (i64, i64), cols: (i64, i64)) -> RegionNet {
        let mask = Tensor::zeros([1, 1, h, w], (Kind::Float, Device::Cpu));
        let _ = mask
            .narrow(2, rows.0, rows.1 - rows.0)
            .narrow(3, cols.0, cols.1 - cols.0)
            .fill_(1.0);
        RegionNet { mask }
    }
}

impl Explainable for RegionNet {
    fn forward_explained(&self, x: &Tensor, _hook: &mut ActivationHook<'_>) -> (Tensor, Tensor) {
        let a = x * &self.mask;
        (a.flatten(1, -1), a)
    }
}

fn map_of(values: Vec<f32>, h: usize, w: usize) -> SaliencyMap {
    SaliencyMap {
        channels: 1,
        height: h,
        width: w,
        values,
        status: MapStatus::Ok,
    }
}

fn uniform_map(seed: u64, h: usize, w: usize) -> SaliencyMap {
    let mut rng = Rng::new(seed);
    map_of((0..h * w).map(|_| rng.next_f64() as f32).collect(), h, w)
}

#[test]
fn auc_and_curves_match_hand_computed_values() {
    tch::set_num_threads(1);
    assert!((auc(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-12);
    assert!((auc(&[0.0, 1.0, 1.0, 1.0, 1.0]) - 0.875).abs() < 1e-12);
    // Masks: share k/steps of the pixels in saliency order.
    let order = saliency_order(&[0.1, 0.9, 0.5, 0.3]);
    assert_eq!(order, [1, 2, 3, 0]);
    let m: Vec<f32> = Vec::try_from(share_masks(&order, 2, 2, 2).flatten(0, -1)).unwrap();
    assert_eq!(m, [0., 0., 0., 0., 0., 1., 1., 0., 1., 1., 1., 1.]);
    // A linear score Σ_p a_p·x_{0,p} on a 2×2 image: each curve point by hand from the
    // blurred copy b (deletion: x → b on the first k pixels; insertion: the reverse).
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 0., 0., 0., 0., 0., 0., 0., 0.])
        .view([3, 2, 2]);
    let a = [1.0, -1.0, 2.0, 0.5];
    let score = |imgs: &Tensor| -> Result<Vec<f64>> {
        let v: Vec<Vec<f32>> = Vec::try_from(imgs.narrow(1, 0, 1).flatten(1, -1))?;
        Ok(v.iter()
            .map(|r| r.iter().zip(a).map(|(p, a)| *p as f64 * a).sum())
            .collect())
    };
    let b: Vec<f32> = Vec::try_from(blur(&x).get(0).flatten(0, -1)).unwrap();
    // Blur is a weighted mean: the mean of a constant-bordered image is kept within range.
    assert!(b.iter().all(|v| (1.0..=4.0).contains(v)), "{b:?}");
    let xs = [1.0f32, 2.0, 3.0, 4.0];
    let c = curves(&x, &[0.1, 0.9, 0.5, 0.3], 4, &score).unwrap();
    let mut removed = [false; 4];
    for k in 0..=4 {
        if k > 0 {
            removed[order[k - 1]] = true;
        }
        let del: f64 = (0..4)
            .map(|p| a[p] * if removed[p] { b[p] } else { xs[p] } as f64)
            .sum();
        let ins: f64 = (0..4)
            .map(|p| a[p] * if removed[p] { xs[p] } else { b[p] } as f64)
            .sum();
        assert!(
            (c.deletion[k] - del).abs() < 1e-5,
            "deletion {k}: {:?}",
            c.deletion
        );
        assert!(
            (c.insertion[k] - ins).abs() < 1e-5,
            "insertion {k}: {:?}",
            c.insertion
        );
    }
    // Average drop: (Y − O)/|Y| when O < Y, and increase when O > Y.
    let d = drop_and_increase(0.8, 0.2);
    assert!((d.drop - 0.75).abs() < 1e-12 && d.increase == 0.0);
    let d = drop_and_increase(0.5, 0.6);
    assert!(d.drop == 0.0 && d.increase == 1.0);
}

#[test]
fn imputation_is_the_weighted_mean_of_the_neighbours() {
    tch::set_num_threads(1);
    assert!((percentile(&[4.0, 1.0, 3.0, 2.0], 50.0) - 2.5).abs() < 1e-12);
    assert_eq!(
        removed_at(&[4.0, 1.0, 3.0, 2.0], 50.0),
        [true, false, true, false]
    );
    // 3×3, one channel varying: the centre alone removed is the 1/6–1/12 weighted mean
    // of its 8 neighbours (the weights sum to 1); a removed corner uses its three
    // in-image neighbours, weights renormalised by their sum 5/12.
    let v: Vec<f32> = (0..9).map(|i| (i * i) as f32).collect();
    let mut data = v.clone();
    data.extend([0.0f32; 18]);
    let x = Tensor::from_slice(&data).view([3, 3, 3]);
    let mut mask = [false; 9];
    mask[4] = true;
    mask[0] = true;
    let out: Vec<f32> = Vec::try_from(
        impute(&x, &mask, 0.0, &mut Rng::new(1))
            .unwrap()
            .get(0)
            .flatten(0, -1),
    )
    .unwrap();
    // Unknowns c (centre) and k (corner 0) couple with weight 1/12:
    //   c = (1/6)(v1+v3+v5+v7) + (1/12)(v2+v6+v8 + k)
    //   (5/12) k = (1/6)(v1+v3) + (1/12) c
    let (v1, v2, v3, v5, v6, v7, v8) = (1.0, 4.0, 9.0, 25.0, 36.0, 49.0, 64.0);
    let c0 = (v1 + v3 + v5 + v7) / 6.0 + (v2 + v6 + v8) / 12.0;
    let k0 = (v1 + v3) / 6.0;
    // c = c0 + k/12, k = (12/5)(k0 + c/12) ⇒ c = c0 + (k0 + c/12)/5.
    let c = (c0 + k0 / 5.0) / (1.0 - 1.0 / 60.0);
    let k = 12.0 / 5.0 * (k0 + c / 12.0);
    assert!(
        (out[4] as f64 - c).abs() < 1e-4 && (out[0] as f64 - k).abs() < 1e-4,
        "{out:?}"
    );
    for p in [1, 2, 3, 5, 6, 7, 8] {
        assert_eq!(out[p], v[p]);
    }
    // The noise has the asked standard deviation (a region with no known pixel is 0 + noise).
    let big = Tensor::zeros([3, 20, 20], (Kind::Float, Device::Cpu));
    let noisy = impute(&big, &[true; 400], 0.01, &mut Rng::new(2)).unwrap();
    let sd = noisy.std(true).double_value(&[]);
    assert!((sd - 0.01).abs() < 0.001, "noise sd {sd}");
}

#[test]
fn the_true_region_and_gradcam_score_better_than_random() {
    tch::set_num_threads(1);
    let (h, w) = (12i64, 12i64);
    let net = RegionNet::new(h, w, (2, 6), (5, 10));
    tch::manual_seed(3);
    let x = Tensor::randn([1, 3, h, w], (Kind::Float, Device::Cpu));
    // Explain the similarity to a slightly different image (the score of an image with
    // itself has no gradient).
    let target = net
        .forward_explained(&(&x + 0.3 * x.randn_like()), &mut |t, _| t.shallow_clone())
        .0;
    let score = similarity_scorer(&net, Device::Cpu, &target, None, 8);
    let opts = FaithOptions {
        steps: 8,
        road_percentiles: vec![20.0, 50.0, 80.0],
        ..Default::default()
    };
    let mut region = vec![0f32; (h * w) as usize];
    for r in 2..6 {
        for c in 5..10 {
            region[(r * w + c) as usize] = 1.0;
        }
    }
    let truth = evaluate(&x.get(0), &map_of(region, 12, 12), &score, &opts).unwrap();
    let (cams, _, _) = gradcam(&net, &x, &|e: &Tensor| cosine_score(e, &target)).unwrap();
    assert_eq!(cams[0].status, MapStatus::Ok);
    let cam = evaluate(&x.get(0), &cams[0], &score, &opts).unwrap();
    // Grad-CAM recovers the region: its maximum lies inside.
    let (r, c) = cams[0].argmax();
    assert!(
        (2..6).contains(&r) && (5..10).contains(&c),
        "argmax {r},{c}"
    );
    for seed in 0..3 {
        let random = evaluate(&x.get(0), &uniform_map(seed, 12, 12), &score, &opts).unwrap();
        for (name, good) in [("truth", &truth), ("gradcam", &cam)] {
            assert!(
                good.deletion_auc < random.deletion_auc,
                "{name} deletion {good:?} vs {random:?}"
            );
            assert!(
                good.insertion_auc > random.insertion_auc,
                "{name} insertion {good:?} vs {random:?}"
            );
            assert!(
                good.road > random.road,
                "{name} ROAD {good:?} vs {random:?}"
            );
        }
        // Keeping only the true region keeps the embedding. (Grad-CAM's map here is
        // ReLU of a signed mix of the region's pixels, not the region: multiplying the
        // image by it turns the embedding, so its drop is no better than noise's — the
        // measure rewards smooth regions, see docs/REFERENCE.md.)
        assert!(
            truth.average_drop < random.average_drop,
            "drop {truth:?} vs {random:?}"
        );
    }
    // The true region kept alone keeps the embedding: no drop at all.
    assert!(truth.average_drop < 1e-6, "{truth:?}");
    assert_eq!(truth.deletion_curve.len(), 9);
}

#[test]
fn road_masks_and_imputation_match_pytorch_grad_cam() {
    tch::set_num_threads(1);
    // Made by scripts/make-road-fixture.py with pytorch-grad-cam 1.5 (noise-free imputation).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/explain/faithfulness/testdata/road.safetensors");
    let fixture: std::collections::HashMap<String, Tensor> =
        crate::tensor_io::read_safetensors(&path)
            .unwrap()
            .into_iter()
            .collect();
    let image = &fixture["image"];
    let cam: Vec<f32> = Vec::try_from(fixture["cam"].flatten(0, -1)).unwrap();
    let complement: Vec<f32> = cam.iter().map(|v| 1.0 - v).collect();
    for p in [20, 50, 90] {
        for (name, values) in [("morf", &cam), ("lerf", &complement)] {
            let kept: Vec<f32> =
                Vec::try_from(fixture[&format!("{name}_{p}_kept")].flatten(0, -1)).unwrap();
            let removed = removed_at(values, p as f64);
            let expected: Vec<bool> = kept.iter().map(|&k| k < 0.5).collect();
            assert_eq!(removed, expected, "{name} {p}: removed pixels");
            let ours = impute(image, &removed, 0.0, &mut Rng::new(0)).unwrap();
            let theirs = &fixture[&format!("{name}_{p}_imputed")];
            let err = (&ours - theirs).abs().max().double_value(&[]);
            assert!(err < 1e-4, "{name} {p}: imputation differs by {err}");
        }
    }
}

#[test]
fn imputed_pixels_are_the_weighted_mean_of_their_neighbours_on_a_large_mask() {
    tch::set_num_threads(1);
    // 90 % of a 40×40 image removed at random (large connected regions, the case the
    // Cholesky factor fills in most): every removed pixel must equal the weighted mean
    // of its in-image 8-neighbours, imputed or not, in every channel.
    let (h, w) = (40usize, 40usize);
    let mut rng = Rng::new(7);
    let values: Vec<f32> = (0..3 * h * w).map(|_| rng.next_f64() as f32).collect();
    let removed: Vec<bool> = (0..h * w).map(|_| rng.chance(0.9)).collect();
    let image = Tensor::from_slice(&values).view([3, h as i64, w as i64]);
    let out: Vec<f32> = Vec::try_from(
        impute(&image, &removed, 0.0, &mut Rng::new(0))
            .unwrap()
            .flatten(0, -1),
    )
    .unwrap();
    let mut worst = 0f64;
    for ch in 0..3 {
        let at = |r: i64, c: i64| out[ch * h * w + (r as usize) * w + c as usize] as f64;
        for p in (0..h * w).filter(|&p| removed[p]) {
            let (r, c) = ((p / w) as i64, (p % w) as i64);
            let (mut sum, mut total) = (0.0, 0.0);
            for dr in -1i64..=1 {
                for dc in -1i64..=1 {
                    let (rr, cc) = (r + dr, c + dc);
                    if (dr, dc) == (0, 0) || rr < 0 || cc < 0 || rr >= h as i64 || cc >= w as i64 {
                        continue;
                    }
                    let weight = if dr == 0 || dc == 0 {
                        1.0 / 6.0
                    } else {
                        1.0 / 12.0
                    };
                    sum += weight * at(rr, cc);
                    total += weight;
                }
            }
            worst = worst.max((at(r, c) - sum / total).abs());
        }
        for p in (0..h * w).filter(|&p| !removed[p]) {
            assert_eq!(out[ch * h * w + p], values[ch * h * w + p]);
        }
    }
    // The output is f32: the equations hold to its rounding.
    assert!(
        worst < 1e-5,
        "largest deviation from the neighbour mean {worst}"
    );
}
