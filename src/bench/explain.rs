//! Explanation benchmark: images explained per second by Grad-CAM, guided backprop and
//! Grad-CAM with weight transfer, beside one plain forward + backward of the same network
//! (embedding sum, gradients for every parameter, as a training step computes them) on
//! the same batch in the same run; then every registered method (or those chosen), each
//! through the explain driver's chunk passes ([`explain_tensor`]), beside the same plain
//! pass. Figures are tensor work only (no decoding, no PNGs).
//!
//! Grad-CAM needs ∂score/∂A only, so its backward pass runs through the head alone; the
//! "full backward" row adds the input gradient (a backward pass through the whole
//! network, what a hook-based Grad-CAM that back-propagates the score to the input or the
//! parameters pays), which is the cost weight transfer avoids in Chen et al.

use crate::explain::chunk::explain_tensor;
use crate::explain::explainer::ExplainOptions;
use crate::explain::gradcam::gradcam_maps;
use crate::explain::guided::{dead_images, display_maps, guided_backprop};
use crate::explain::saliency::gradients;
use crate::explain::target::cosine_score;
use crate::explain::transfer::{transfer_gradcam, WeightStore, DEFAULT_TRANSFER_K};
use crate::explain::SaliencyMethod;
use crate::model::head::l2_normalize;
use crate::model::{Arch, EmbeddingNet, HeadConfig};
use crate::search::Distance;
use anyhow::{Context, Result};
use serde::Serialize;
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ExplainBenchOptions {
    /// Backbones.
    pub archs: Vec<Arch>,
    /// Square input sizes.
    pub sizes: Vec<i64>,
    /// Batch sizes.
    pub batches: Vec<i64>,
    /// Timed rounds (each method once per round, in turn) after one warm-up round; the best counts.
    pub iterations: usize,
    /// libtorch threads.
    pub threads: i32,
    /// Stored training images of the weight-transfer store.
    pub stored: i64,
    /// Methods timed through the explain driver (those needing the weight store are left
    /// out: weight transfer has its own columns).
    pub methods: Vec<&'static dyn SaliencyMethod>,
    /// Images per pass of the methods, and masked or ablated copies per pass of Score-CAM
    /// and Ablation-CAM.
    pub method_batch_size: usize,
}

impl Default for ExplainBenchOptions {
    fn default() -> Self {
        ExplainBenchOptions {
            archs: vec![Arch::MobileNetV2, Arch::ResNet18],
            sizes: vec![224],
            batches: vec![1, 16],
            iterations: 3,
            threads: 2,
            stored: 1000,
            methods: crate::explain::METHODS.to_vec(),
            method_batch_size: 16,
        }
    }
}

/// One measured configuration (images per second; ratios against the plain pass).
#[derive(Debug, Clone, Serialize)]
pub struct ExplainBenchRow {
    /// Backbone.
    pub arch: String,
    /// Input side.
    pub size: i64,
    /// Images per pass.
    pub batch: i64,
    /// Plain forward + backward (all parameter gradients), images/s.
    pub plain_images_per_s: f64,
    /// Grad-CAM (forward, head backward, maps), images/s.
    pub gradcam_images_per_s: f64,
    /// Grad-CAM with a backward pass through the whole network (input gradient too), images/s.
    pub gradcam_full_backward_images_per_s: f64,
    /// Guided backprop (segmented walk, display maps), images/s.
    pub guided_images_per_s: f64,
    /// Weight transfer (forward without gradients, kNN in the store, maps), images/s.
    pub transfer_images_per_s: f64,
    /// Plain pass time ÷ method time for each method (> 1: faster than the plain pass).
    pub gradcam_vs_plain: f64,
    /// As above, full-backward Grad-CAM.
    pub gradcam_full_backward_vs_plain: f64,
    /// As above, guided backprop.
    pub guided_vs_plain: f64,
    /// As above, weight transfer.
    pub transfer_vs_plain: f64,
    /// Weight transfer's speed over Grad-CAM's (head-only backward).
    pub transfer_over_gradcam: f64,
    /// Weight transfer's speed over full-backward Grad-CAM's.
    pub transfer_over_gradcam_full_backward: f64,
    /// Every timed method through the explain driver, in page order.
    pub methods: Vec<MethodSpeed>,
}

/// One method's speed through the explain driver.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSpeed {
    /// The method's key.
    pub method: String,
    /// Images per second.
    pub images_per_s: f64,
    /// Plain pass time ÷ method time, the plain pass timed in the same rounds (> 1: faster).
    pub vs_plain: f64,
}

/// Best seconds of each job over `iterations` rounds after one warm-up round. The jobs
/// run in turn within each round, so load from other work on a shared machine falls on
/// all of them alike, and the best run is the least disturbed one.
fn time_interleaved(iterations: usize, jobs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    for job in jobs.iter_mut() {
        job();
    }
    let mut best = vec![f64::INFINITY; jobs.len()];
    for _ in 0..iterations.max(1) {
        for (job, b) in jobs.iter_mut().zip(best.iter_mut()) {
            let start = Instant::now();
            job();
            *b = b.min(start.elapsed().as_secs_f64());
        }
    }
    best
}

/// Measures every (arch, size, batch) of `opts` with random weights (speed does not depend
/// on them) on the CPU.
pub fn run(opts: &ExplainBenchOptions) -> Result<Vec<ExplainBenchRow>> {
    tch::set_num_threads(opts.threads);
    tch::manual_seed(0);
    let mut out = Vec::new();
    for &arch in &opts.archs {
        let vs = VarStore::new(Device::Cpu);
        let net = EmbeddingNet::new(&vs.root(), arch, &HeadConfig::default());
        let d = net.embedding_dim();
        let store = WeightStore {
            embeddings: l2_normalize(&Tensor::randn([opts.stored, d], (Kind::Float, Device::Cpu))),
            weights: Tensor::randn([opts.stored, arch.out_dim()], (Kind::Float, Device::Cpu))
                * 1e-3,
            labels: Tensor::zeros([opts.stored], (Kind::Int64, Device::Cpu)),
            indices: Tensor::arange(opts.stored, (Kind::Int64, Device::Cpu)),
        };
        for &size in &opts.sizes {
            for &batch in &opts.batches {
                eprintln!("measuring {arch} at {size}², batch {batch}…");
                let t = measure(&vs, &net, &store, size, batch, opts.iterations)
                    .with_context(|| format!("explaining {arch} at {size}², batch {batch}"))?;
                let (plain, gradcam, full, guided, transfer) = (t[0], t[1], t[2], t[3], t[4]);
                let ips = |s: f64| batch as f64 / s;
                let methods = measure_methods(&vs, &net, size, batch, opts)
                    .with_context(|| format!("methods of {arch} at {size}², batch {batch}"))?;
                out.push(ExplainBenchRow {
                    arch: arch.name().into(),
                    size,
                    batch,
                    plain_images_per_s: ips(plain),
                    gradcam_images_per_s: ips(gradcam),
                    gradcam_full_backward_images_per_s: ips(full),
                    guided_images_per_s: ips(guided),
                    transfer_images_per_s: ips(transfer),
                    gradcam_vs_plain: plain / gradcam,
                    gradcam_full_backward_vs_plain: plain / full,
                    guided_vs_plain: plain / guided,
                    transfer_vs_plain: plain / transfer,
                    transfer_over_gradcam: gradcam / transfer,
                    transfer_over_gradcam_full_backward: full / transfer,
                    methods,
                });
            }
        }
    }
    Ok(out)
}

/// The plain forward + backward of `net` on `x`: every parameter's gradient (zeroed first).
fn plain_pass(vs: &VarStore, net: &EmbeddingNet, x: &Tensor) {
    vs.variables().values().for_each(|v| {
        let mut g = v.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    });
    net.forward_t(x, false).sum(Kind::Float).backward();
}

/// Each of `opts.methods` (but those needing the weight store) through the explain
/// driver on one random batch, timed in the same rounds as the plain pass.
fn measure_methods(
    vs: &VarStore,
    net: &EmbeddingNet,
    size: i64,
    batch: i64,
    opts: &ExplainBenchOptions,
) -> Result<Vec<MethodSpeed>> {
    let methods = crate::explain::registry::without_weight_store(&opts.methods);
    let x = Tensor::randn([batch, 3, size, size], (Kind::Float, Device::Cpu));
    let d = net.embedding_dim();
    let targets = l2_normalize(&Tensor::randn([batch, d], (Kind::Float, Device::Cpu)));
    let eopts = ExplainOptions {
        batch_size: opts.method_batch_size.max(1),
        ..Default::default()
    };
    let failed = std::cell::RefCell::new(None::<anyhow::Error>);
    let mut plain = || plain_pass(vs, net, &x);
    let mut jobs: Vec<Box<dyn FnMut() + '_>> = methods
        .iter()
        .map(|m| {
            let (x, targets, eopts, failed) = (&x, &targets, &eopts, &failed);
            Box::new(move || {
                if let Err(e) = explain_tensor(net, x, targets, &[*m], eopts) {
                    failed.borrow_mut().get_or_insert(e);
                }
            }) as Box<dyn FnMut() + '_>
        })
        .collect();
    let mut all: Vec<&mut dyn FnMut()> = vec![&mut plain];
    all.extend(jobs.iter_mut().map(|j| &mut **j as &mut dyn FnMut()));
    let t = time_interleaved(opts.iterations, &mut all);
    drop(all);
    drop(jobs);
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    Ok(methods
        .iter()
        .zip(&t[1..])
        .map(|(m, &s)| MethodSpeed {
            method: m.info().name.to_string(),
            images_per_s: batch as f64 / s,
            vs_plain: t[0] / s,
        })
        .collect())
}

/// Best seconds of the plain pass, Grad-CAM, full-backward Grad-CAM, guided backprop and
/// weight transfer on one random batch of `batch` images of `size`².
fn measure(
    vs: &VarStore,
    net: &EmbeddingNet,
    store: &WeightStore,
    size: i64,
    batch: i64,
    iterations: usize,
) -> Result<Vec<f64>> {
    let x = Tensor::randn([batch, 3, size, size], (Kind::Float, Device::Cpu));
    let d = net.embedding_dim();
    let targets = l2_normalize(&Tensor::randn([batch, d], (Kind::Float, Device::Cpu)));
    let score = |e: &Tensor| cosine_score(e, &targets);
    let mut plain = || plain_pass(vs, net, &x);
    // The first error of a timed job, returned after the rounds.
    let failed = std::cell::RefCell::new(None::<anyhow::Error>);
    let keep = |r: Result<()>| {
        if let Err(e) = r {
            failed.borrow_mut().get_or_insert(e);
        }
    };
    let gradcam = |input: bool| {
        keep(gradients(net, &x, &score, input).and_then(|g| gradcam_maps(&g, size, size).map(drop)))
    };
    let mut head_only = || gradcam(false);
    let mut full = || gradcam(true);
    let mut guided = || {
        keep(
            guided_backprop(net, &x, &score)
                .and_then(|g| display_maps(&g.input_grads, &dead_images(&g)).map(drop)),
        )
    };
    let mut transfer =
        || keep(transfer_gradcam(net, &x, store, DEFAULT_TRANSFER_K, Distance::Cosine).map(drop));
    let t = time_interleaved(
        iterations,
        &mut [
            &mut plain,
            &mut head_only,
            &mut full,
            &mut guided,
            &mut transfer,
        ],
    );
    match failed.into_inner() {
        Some(e) => Err(e),
        None => Ok(t),
    }
}
