//! Explaining images with a trained phase: every requested method for a batch of images
//! (one forward/backward per chunk), the nearest training images with their pair maps,
//! the majority-vote prediction, and the output directory of one explanation:
//!
//! ```text
//! <out>/index.html          the page (image, maps, neighbours, prediction)
//! <out>/explanation.json    what the page shows, as data (see `ExplanationRecord`)
//! <out>/maps.safetensors    every map and raw gradient as arrays
//! <out>/image.png           the network's input, at display size
//! <out>/<method>.png, <method>-overlay.png   heat map alone / JET overlay 50/50
//! <out>/guided.png, guided_gradcam.png       gradient images (display normalisation)
//! <out>/pair-<i>-query[-overlay].png, pair-<i>-neighbour[-overlay].png, neighbour-<i>.jpg
//! ```

use super::chunk::{Chunk, ChunkBase};
use super::input::{load_inputs, load_readable, Inputs, Unreadable};
use super::map::SaliencyMap;
use super::method::{MethodOutput, SaliencyMethod};
use super::pair::PairExplanation;
use super::render::write_map_pngs;
use super::saliency::Explainable;
use super::target::{class_centroid, first_other, similarity_score, ContrastChoice, TargetChoice};
use super::transfer::{WeightStore, DEFAULT_TRANSFER_K};
use crate::atomic::{write_json, write_png};
use crate::data::decode::decode_rgb;
use crate::eval::gallery::Gallery;
use crate::eval::phase_model::PhaseModel;
use crate::eval::predict::{embed_files, predict_embeddings, Neighbour, Prediction};
use crate::imaging::{shrink, write_jpeg};
use crate::model::layers::apply_activation;
use crate::progress::Progress;
use crate::run::RunDir;
use crate::search::knn::k_nearest;
use crate::tensor_io::write_safetensors;
use anyhow::{bail, Context, Result};
use image::{DynamicImage, RgbImage};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// What to explain and how.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// Methods to run, in page order (see [`super::registry`]).
    pub methods: Vec<&'static dyn SaliencyMethod>,
    /// What the score compares each image with.
    pub target: TargetChoice,
    /// What the score is contrasted with (`--contrast`), if anything.
    pub contrast: Option<ContrastChoice>,
    /// Nearest training images listed (and given pair maps), and the majority vote's k.
    pub k: usize,
    /// Stored neighbours whose weights weight transfer averages.
    pub transfer_k: usize,
    /// Images per forward/backward pass.
    pub batch_size: usize,
    /// How many of the k neighbours get pair maps (nearest first).
    pub pair_neighbours: usize,
    /// The CAM family's target layers (torchvision module names; empty: the last
    /// convolution); maps of several are averaged ([`super::layers`]).
    pub layers: Vec<String>,
    /// CAMs averaged over flipped and scaled inputs ([`super::smooth`]).
    pub aug_smooth: bool,
    /// CAMs as the first principal component of the weighted activations ([`super::smooth`]).
    pub eigen_smooth: bool,
}

impl Default for ExplainOptions {
    fn default() -> Self {
        ExplainOptions {
            methods: super::METHODS.to_vec(),
            target: TargetChoice::Nearest,
            contrast: None,
            k: 10,
            transfer_k: DEFAULT_TRANSFER_K,
            batch_size: 16,
            pair_neighbours: usize::MAX,
            layers: Vec::new(),
            aug_smooth: false,
            eigen_smooth: false,
        }
    }
}

/// The target an image's score was computed against.
#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// `nearest`, `class`, `reference` or `predicted`.
    pub kind: String,
    /// The class (nearest: the neighbour's class; class: the class).
    pub class: Option<String>,
    /// The image (nearest neighbour or reference image).
    pub path: Option<PathBuf>,
    /// The class whose centroid the score is contrasted with (`--contrast`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contrast: Option<String>,
    /// cos(embedding, target), minus cos(embedding, contrast centroid) under a contrast.
    pub score: f64,
}

/// A chunk's forward pass, prediction and targets: what the methods run on it read.
pub struct Scene {
    /// The images.
    pub inputs: Inputs,
    /// Embeddings and last-conv activations of the network as it was.
    pub forward: Forward,
    /// Target embeddings `[B, D]`, on the run's device.
    pub targets: Tensor,
    /// Contrast embeddings `[B, D]`, on the run's device (`--contrast`).
    pub contrast: Option<Tensor>,
    /// What each score compares with, and the score.
    pub target_info: Vec<TargetInfo>,
    /// Nearest training images and majority vote, per image.
    pub predictions: Vec<Prediction>,
}

/// One forward pass without gradients.
pub struct Forward {
    /// `[B, D]`, on the CPU.
    pub embeddings: Tensor,
    /// `[B, C, h, w]`, on the run's device.
    pub activations: Tensor,
}

/// Everything computed for one image.
pub struct Explanation {
    /// The image file.
    pub image: PathBuf,
    /// The network's input crop.
    pub input: RgbImage,
    /// The class of the image when known (a dataset image, or a folder named as a class).
    pub true_class: Option<String>,
    /// Nearest neighbours and majority vote.
    pub prediction: Prediction,
    /// What the score compares with.
    pub target: TargetInfo,
    /// Maps by method name (`gradcam`, `transfer`, `vanilla`, `guided`, `guided_gradcam`).
    pub maps: BTreeMap<String, SaliencyMap>,
    /// Raw arrays for `maps.safetensors` (maps, weights, gradients).
    pub arrays: Vec<(String, Tensor)>,
    /// Pair maps (reference image first when there is one, then the neighbours).
    pub pairs: Vec<PairExplanation>,
    /// Said on the page when a CAM's layer is coarser than 7×7 at the input size.
    pub layer_note: Option<String>,
}

/// A trained phase ready to explain images.
pub struct Explainer<'a> {
    /// The run.
    pub run: RunDir,
    /// The trained phase.
    pub pm: &'a PhaseModel,
    /// The references searched for neighbours.
    pub gallery: Gallery,
    store: Option<WeightStore>,
    labels: Vec<usize>,
    layer_note: Option<String>,
}

impl<'a> Explainer<'a> {
    /// Opens the phase's gallery.
    pub fn new(run: &RunDir, pm: &'a PhaseModel) -> Result<Explainer<'a>> {
        let gallery = pm.gallery(run)?;
        let labels = gallery.manifest.entries.iter().map(|e| e.label).collect();
        Ok(Explainer {
            run: run.clone(),
            pm,
            gallery,
            store: None,
            labels,
            layer_note: None,
        })
    }

    /// The weight-transfer store (read or computed on first use); the flag says whether it
    /// was computed now.
    pub fn weight_store(&mut self) -> Result<(&WeightStore, bool)> {
        let computed = match self.store {
            Some(_) => false,
            None => {
                let (s, c) = WeightStore::load_or_compute(&self.run, self.pm)?;
                self.store = Some(s);
                c
            }
        };
        let store = self
            .store
            .as_ref()
            .context("the weight store was just set")?;
        Ok((store, computed))
    }

    /// The class of an image: a sample of the dataset, or a file in a folder named as a class.
    pub fn true_class(&self, path: &Path) -> Option<String> {
        let classes = &self.pm.exp.dataset.classes;
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let c = canon(path);
        if let Some(s) = self
            .pm
            .exp
            .samples
            .iter()
            .find(|s| s.path == path || canon(&s.path) == c)
        {
            return Some(classes[s.label].clone());
        }
        let parent = path.parent()?.file_name()?.to_string_lossy().into_owned();
        classes.iter().find(|k| **k == parent).cloned()
    }

    /// Explains images in chunks of `opts.batch_size`; an unreadable image is an error
    /// naming it.
    pub fn explain(
        &mut self,
        paths: &[PathBuf],
        opts: &ExplainOptions,
    ) -> Result<Vec<Explanation>> {
        let opts = &self.prepare(opts)?;
        let (transform, device) = (self.pm.exp.test_transform(), self.pm.exp.device);
        let mut out = Vec::with_capacity(paths.len());
        let bar = Progress::new(paths.len() as u64, "explain");
        for chunk in paths.chunks(opts.batch_size.max(1)) {
            out.extend(self.explain_chunk(load_inputs(chunk, transform, device)?, opts)?);
            bar.inc(chunk.len() as u64);
        }
        bar.finish();
        Ok(out)
    }

    /// Explains the images that can be read, in chunks of `opts.batch_size`, and lists
    /// the others.
    pub fn explain_readable(
        &mut self,
        paths: &[PathBuf],
        opts: &ExplainOptions,
    ) -> Result<(Vec<Explanation>, Vec<Unreadable>)> {
        let opts = &self.prepare(opts)?;
        let (transform, device) = (self.pm.exp.test_transform(), self.pm.exp.device);
        let (mut out, mut skipped) = (Vec::with_capacity(paths.len()), Vec::new());
        let bar = Progress::new(paths.len() as u64, "explain");
        for chunk in paths.chunks(opts.batch_size.max(1)) {
            let (inputs, unreadable) = load_readable(chunk, transform, device);
            skipped.extend(unreadable);
            if !inputs.paths.is_empty() {
                out.extend(self.explain_chunk(inputs, opts)?);
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish();
        Ok((out, skipped))
    }

    /// Reads (or computes) what the chosen methods need before the first chunk, and the
    /// options with `--layer auto` resolved.
    fn prepare(&mut self, opts: &ExplainOptions) -> Result<ExplainOptions> {
        let mut opts = opts.clone();
        let auto = self.resolve_auto_layer(&mut opts.layers)?;
        self.layer_note = match auto {
            Some(note) => Some(note),
            None => self.layer_note(&opts)?,
        };
        if opts.methods.iter().any(|m| m.info().weight_store) {
            self.weight_store()?;
        }
        Ok(opts)
    }

    /// Replaces `auto` in `layers` by the deepest layer at least 7×7 at the run's input
    /// size (the last convolution when it is that fine; [`super::layers::finest_readable`]),
    /// and says which one it chose when that is not the last convolution.
    pub fn resolve_auto_layer(&self, layers: &mut [String]) -> Result<Option<String>> {
        use super::layers::{finest_readable, last_layer_name, layer_sizes, AUTO_LAYER};
        if !layers.iter().any(|l| l == AUTO_LAYER) {
            return Ok(None);
        }
        let net = &self.pm.model.net;
        let side = self.pm.exp.test_transform().crop as i64;
        let sizes = layer_sizes(net, side, side, self.pm.exp.device)?;
        let last = last_layer_name(net);
        let (name, h, w) = finest_readable(&sizes)
            .cloned()
            .unwrap_or_else(|| (last.clone(), 0, 0));
        for l in layers.iter_mut().filter(|l| *l == AUTO_LAYER) {
            *l = name.clone();
        }
        if name == last {
            return Ok(None);
        }
        let (lh, lw) = sizes
            .iter()
            .find(|s| s.0 == last)
            .map_or((0, 0), |s| (s.1, s.2));
        Ok(Some(format!(
            "CAM layer {name} ({h}×{w}), chosen by --layer auto: the last convolution {last} is only {lh}×{lw} at this {side}-pixel input, too coarse to show where in the image the similarity comes from; {name} is the deepest layer at least 7×7."
        )))
    }

    /// Checks `opts.layers` against the network, and says on the page when a CAM's layer
    /// is coarser than 7×7 at the run's input size ([`super::layers::coarse_note`]).
    fn layer_note(&self, opts: &ExplainOptions) -> Result<Option<String>> {
        use super::layers::{check_layers, coarse_note, last_layer_name, layer_sizes};
        use super::method::Pass;
        let net = &self.pm.model.net;
        check_layers(net, &opts.layers)?;
        let cams = opts.methods.iter().any(|m| {
            let p = m.info().passes;
            p.contains(&Pass::LayerGradient) || p.contains(&Pass::LayerActivations)
        });
        if !cams {
            return Ok(None);
        }
        let side = self.pm.exp.test_transform().crop as i64;
        let sizes = layer_sizes(net, side, side, self.pm.exp.device)?;
        let chosen = if opts.layers.is_empty() {
            vec![last_layer_name(net)]
        } else {
            opts.layers.clone()
        };
        Ok(coarse_note(&chosen, &sizes))
    }

    /// The centroid `[D]` of the gallery embeddings of class `name` (`what` names the
    /// option in the error when there is no such class).
    fn centroid(&self, name: &str, what: &str) -> Result<Tensor> {
        let m = &self.gallery.manifest;
        let Some(label) = m.classes.iter().position(|c| c == name) else {
            let some: Vec<&str> = m.classes.iter().take(5).map(String::as_str).collect();
            bail!(
                "{what} {name:?} is not a class of this run (classes include {})",
                some.join(", ")
            );
        };
        class_centroid(&self.gallery.embeddings, &self.labels, label, name)
    }

    /// Contrast embeddings `[B, D]` of the images `paths` and the class of each, when
    /// asked. Under [`ContrastChoice::TrueClass`] an image whose class is unknown or has no
    /// gallery image (a held-out class) gets a zero row: cos(f, 0) = 0, no contrast.
    fn contrasts(
        &self,
        paths: &[PathBuf],
        opts: &ExplainOptions,
    ) -> Result<Option<(Tensor, Vec<Option<String>>)>> {
        let (rows, classes) = match &opts.contrast {
            None => return Ok(None),
            Some(ContrastChoice::Class(name)) => {
                let c = self.centroid(name, "--contrast")?;
                let rows = paths.iter().map(|_| c.shallow_clone()).collect();
                (rows, vec![Some(name.clone()); paths.len()])
            }
            Some(ContrastChoice::TrueClass) => {
                let dim = self.gallery.embeddings.size()[1];
                let mut rows = Vec::with_capacity(paths.len());
                let mut classes = Vec::with_capacity(paths.len());
                for p in paths {
                    let class = self.true_class(p);
                    match class.as_deref().map(|c| self.centroid(c, "--contrast")) {
                        Some(Ok(c)) => {
                            rows.push(c);
                            classes.push(class);
                        }
                        _ => {
                            rows.push(Tensor::zeros([dim], (Kind::Float, Device::Cpu)));
                            classes.push(None);
                        }
                    }
                }
                (rows, classes)
            }
        };
        Ok(Some((Tensor::stack(&rows, 0), classes)))
    }

    /// Target embeddings `[B, D]` for a chunk and what they are.
    fn targets(
        &self,
        embeddings: &Tensor,
        nearest: &[Vec<i64>],
        distances: &[Vec<f32>],
        predictions: &[Prediction],
        opts: &ExplainOptions,
    ) -> Result<(Tensor, Vec<TargetInfo>)> {
        let m = &self.gallery.manifest;
        let b = embeddings.size()[0];
        let info = |kind: &str, class: Option<String>, path: Option<PathBuf>| TargetInfo {
            kind: kind.into(),
            class,
            path,
            contrast: None,
            score: 0.0,
        };
        match &opts.target {
            TargetChoice::Nearest => {
                let mut rows_t = Vec::new();
                let mut infos = Vec::new();
                for (row, d) in nearest.iter().zip(distances) {
                    let d: Vec<f64> = d.iter().map(|&x| x as f64).collect();
                    let j = row[first_other(&d)];
                    let e = &m.entries[j as usize];
                    rows_t.push(self.gallery.embeddings.get(j));
                    let class = Some(m.classes[e.label].clone());
                    infos.push(info("nearest", class, Some(e.path.clone())));
                }
                Ok((Tensor::stack(&rows_t, 0), infos))
            }
            TargetChoice::Predicted => {
                let mut rows_t = Vec::new();
                for p in predictions {
                    rows_t.push(self.centroid(&p.majority, "the predicted class")?);
                }
                let infos = predictions
                    .iter()
                    .map(|p| info("predicted", Some(p.majority.clone()), None))
                    .collect();
                Ok((Tensor::stack(&rows_t, 0), infos))
            }
            TargetChoice::Class(name) => {
                let c = self.centroid(name, "--class")?;
                let infos = (0..b)
                    .map(|_| info("class", Some(name.clone()), None))
                    .collect();
                Ok((c.unsqueeze(0).expand([b, -1], false).contiguous(), infos))
            }
            TargetChoice::Reference(path) => {
                let e = embed_files(
                    &self.pm.model.net,
                    std::slice::from_ref(path),
                    self.pm.exp.test_transform(),
                    self.pm.exp.device,
                )?;
                let class = self.true_class(path);
                let infos = (0..b)
                    .map(|_| info("reference", class.clone(), Some(path.clone())))
                    .collect();
                Ok((e.expand([b, -1], false).contiguous(), infos))
            }
        }
    }

    /// The forward pass of images `x` without gradients, with the network as it is now.
    pub fn forward(&self, x: &Tensor) -> Forward {
        let (e, a) = tch::no_grad(|| {
            self.pm
                .model
                .net
                .forward_explained(x, &mut apply_activation)
        });
        Forward {
            embeddings: e.to_device(Device::Cpu),
            activations: a,
        }
    }

    /// The forward pass, the prediction and the targets of a chunk of loaded images.
    pub fn scene(&self, inputs: Inputs, opts: &ExplainOptions) -> Result<Scene> {
        let pm = self.pm;
        let (device, distance) = (pm.exp.device, pm.exp.cfg.model.distance);
        let forward = self.forward(&inputs.tensor);
        let e0 = &forward.embeddings;
        let k = opts.k.clamp(1, self.gallery.manifest.entries.len().max(1));
        let predictions = predict_embeddings(&self.gallery, e0, &inputs.paths, k, distance)?;
        let (idx, dist) = k_nearest(e0, &self.gallery.embeddings, k as i64, distance);
        let idx: Vec<Vec<i64>> = Vec::try_from(&idx).context("reading the nearest neighbours")?;
        let dist: Vec<Vec<f32>> =
            Vec::try_from(&dist).context("reading the neighbours' distances")?;
        let (targets, mut target_info) = self.targets(e0, &idx, &dist, &predictions, opts)?;
        let targets = targets.to_kind(Kind::Float).to_device(device);
        let contrast = match self.contrasts(&inputs.paths, opts)? {
            Some((c, classes)) => {
                for (t, class) in target_info.iter_mut().zip(classes) {
                    t.contrast = class;
                }
                Some(c.to_kind(Kind::Float).to_device(device))
            }
            None => None,
        };
        let scores: Vec<f64> = Vec::try_from(
            similarity_score(&e0.to_device(device), &targets, contrast.as_ref())
                .to_kind(Kind::Double)
                .to_device(Device::Cpu),
        )
        .context("reading the scores")?;
        for (t, s) in target_info.iter_mut().zip(&scores) {
            t.score = *s;
        }
        Ok(Scene {
            inputs,
            forward,
            targets,
            contrast,
            target_info,
            predictions,
        })
    }

    /// Runs `methods` on a scene, reading the forward pass `forward` (the scene's own, or
    /// one of the network after its weights changed, for the sanity check).
    pub fn run_methods(
        &self,
        scene: &Scene,
        forward: &Forward,
        methods: &[&'static dyn SaliencyMethod],
        opts: &ExplainOptions,
    ) -> Result<MethodOutput> {
        let pm = self.pm;
        let base = ChunkBase {
            net: &pm.model.net,
            inputs: &scene.inputs,
            transform: pm.exp.test_transform(),
            device: pm.exp.device,
            distance: pm.exp.cfg.model.distance,
            embeddings: &forward.embeddings,
            activations: &forward.activations,
            targets: &scene.targets,
            contrast: scene.contrast.as_ref(),
            target_info: &scene.target_info,
            predictions: &scene.predictions,
            store: self.store.as_ref(),
            options: opts,
        };
        let chunk = Chunk::run(base, methods)?;
        let mut out = MethodOutput::new(chunk.len());
        for m in methods {
            m.explain(&chunk, &mut out)
                .with_context(|| format!("computing {}", m.info().title))?;
        }
        Ok(out)
    }

    /// Explains one chunk of loaded images: the scene (forward pass, prediction,
    /// targets), then the chosen methods.
    fn explain_chunk(&self, inputs: Inputs, opts: &ExplainOptions) -> Result<Vec<Explanation>> {
        let scene = self.scene(inputs, opts)?;
        let out = self.run_methods(&scene, &scene.forward, &opts.methods, opts)?;
        Ok(self.assemble(scene.inputs, scene.predictions, scene.target_info, out))
    }

    /// One [`Explanation`] per image of a chunk.
    fn assemble(
        &self,
        inputs: Inputs,
        predictions: Vec<Prediction>,
        targets: Vec<TargetInfo>,
        out: MethodOutput,
    ) -> Vec<Explanation> {
        let per_image = out.maps.into_iter().zip(out.arrays).zip(out.pairs);
        inputs
            .paths
            .into_iter()
            .zip(inputs.images)
            .zip(predictions.into_iter().zip(targets))
            .zip(per_image)
            .map(
                |(((image, input), (prediction, target)), ((maps, arrays), pairs))| Explanation {
                    true_class: self.true_class(&image),
                    layer_note: self.layer_note.clone(),
                    image,
                    input,
                    prediction,
                    target,
                    maps,
                    arrays,
                    pairs,
                },
            )
            .collect()
    }
}

/// `explanation.json`: what one explanation's page shows, with file names relative to
/// its directory.
#[derive(Debug, Clone, Serialize)]
pub struct ExplanationRecord {
    /// Layout version of this record (`crate::run::record`).
    pub schema_version: u32,
    /// The explained image (as given).
    pub image: PathBuf,
    /// `image.png`: the network's input at display size.
    pub input_png: String,
    /// The image's class when known.
    pub true_class: Option<String>,
    /// Majority vote over the k neighbours.
    pub predicted: String,
    /// Class of the nearest neighbour.
    pub nearest: String,
    /// Votes for the predicted class, out of `neighbours.len()`.
    pub votes: usize,
    /// Whether the prediction equals the true class (when known).
    pub correct: Option<bool>,
    /// What the score compares with.
    pub target: TargetInfo,
    /// Per method: status and PNG files (heat map first, then the overlay when there is one).
    pub maps: BTreeMap<String, MapRecord>,
    /// The k nearest training images, nearest first (and the reference image first, when given).
    pub neighbours: Vec<NeighbourRecord>,
    /// When a CAM's layer is coarser than 7×7 at the input size: what the page says
    /// about it, naming a finer layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_note: Option<String>,
}

/// One method's output files.
#[derive(Debug, Clone, Serialize)]
pub struct MapRecord {
    /// `ok`, `constant`, `zero` or `non_finite`.
    pub status: super::map::MapStatus,
    /// PNG file names: heat map, then overlay (one-channel maps).
    pub files: Vec<String>,
}

/// One neighbour on the page.
#[derive(Debug, Clone, Serialize)]
pub struct NeighbourRecord {
    /// Path of the training image.
    pub path: PathBuf,
    /// Its class.
    pub class: String,
    /// Its distance to the explained image.
    pub distance: f64,
    /// `neighbour` or `reference`.
    pub role: String,
    /// Thumbnail JPEG (a resized copy).
    pub thumbnail: String,
    /// Pair maps, when computed.
    pub pair: Option<PairRecord>,
}

/// A pair's files.
#[derive(Debug, Clone, Serialize)]
pub struct PairRecord {
    /// Cosine similarity of the pooled features (the sum of either map's terms).
    pub similarity: f64,
    /// Status and files of the explained image's map.
    pub query: MapRecord,
    /// Status and files of the other image's map.
    pub neighbour: MapRecord,
}

/// Thumbnail side of neighbour images.
pub const THUMBNAIL_SIDE: u32 = 128;

/// Writes one explanation into `dir` (PNGs, thumbnails, arrays, JSON, page) and returns
/// the record written as `explanation.json`.
pub fn write_explanation(
    e: &Explanation,
    dir: &Path,
    title: &str,
    nav: &[(String, String)],
) -> Result<ExplanationRecord> {
    std::fs::create_dir_all(dir)
        .map_err(|err| anyhow::anyhow!("creating {}: {err}", dir.display()))?;
    write_png(
        &dir.join("image.png"),
        &DynamicImage::ImageRgb8(e.input.clone()),
    )?;
    let mut maps = BTreeMap::new();
    for (name, m) in &e.maps {
        let files = write_map_pngs(dir, name, m, &e.input)?;
        maps.insert(
            name.clone(),
            MapRecord {
                status: m.status,
                files,
            },
        );
    }
    let neighbours = write_neighbours(e, dir)?;
    let arrays: Vec<(String, Tensor)> = e
        .arrays
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    write_safetensors(&dir.join("maps.safetensors"), &arrays)?;
    let record = ExplanationRecord {
        schema_version: crate::run::record::SCHEMA_VERSION,
        image: e.image.clone(),
        input_png: "image.png".into(),
        true_class: e.true_class.clone(),
        predicted: e.prediction.majority.clone(),
        nearest: e.prediction.nearest.clone(),
        votes: e.prediction.votes,
        correct: e.true_class.as_ref().map(|c| *c == e.prediction.majority),
        target: e.target.clone(),
        maps,
        neighbours,
        layer_note: e.layer_note.clone(),
    };
    write_json(&dir.join(crate::run::explanations::ITEM_FILE), &record)?;
    crate::atomic::write_atomic(
        &dir.join("index.html"),
        super::page::explanation_page(&record, title, nav).as_bytes(),
    )?;
    remove_stale_images(dir, &record)?;
    Ok(record)
}

/// The image files `record` names: the input, every map's, every neighbour's.
fn record_images(record: &ExplanationRecord) -> std::collections::BTreeSet<&str> {
    let maps = record.maps.values().chain(
        record
            .neighbours
            .iter()
            .filter_map(|n| n.pair.as_ref())
            .flat_map(|p| [&p.query, &p.neighbour]),
    );
    maps.flat_map(|m| m.files.iter().map(String::as_str))
        .chain(record.neighbours.iter().map(|n| n.thumbnail.as_str()))
        .chain([record.input_png.as_str()])
        .collect()
}

/// True for a file name an explanation writes: `<method>[-overlay].png`,
/// `pair-<j>-<side>[-overlay].png`, `neighbour-<j>.jpg` (never a user's own file in an
/// `--out` folder).
fn is_explanation_image(name: &str) -> bool {
    let numbered = |rest: &str| rest.starts_with(|c: char| c.is_ascii_digit());
    if let Some(rest) = name.strip_prefix("neighbour-") {
        return numbered(rest) && rest.ends_with(".jpg");
    }
    let Some(stem) = name.strip_suffix(".png") else {
        return false;
    };
    let stem = stem.strip_suffix("-overlay").unwrap_or(stem);
    if let Some(rest) = stem.strip_prefix("pair-") {
        return numbered(rest);
    }
    super::METHODS.iter().any(|m| m.info().name == stem)
}

/// Removes the images in `dir` that an explanation writes ([`is_explanation_image`])
/// and `record` does not name: those of an earlier explanation of the same image with
/// other methods or more neighbours, which its page no longer shows and the report
/// would otherwise copy.
fn remove_stale_images(dir: &Path, record: &ExplanationRecord) -> Result<()> {
    let keep = record_images(record);
    crate::atomic::remove_files_where(dir, |name| {
        is_explanation_image(name) && !keep.contains(name)
    })
}

/// Writes the thumbnails and pair maps of an explanation's neighbours into `dir`: the
/// paired images first, in pair order (reference image first), then the neighbours beyond
/// `pair_neighbours`, without pair maps.
fn write_neighbours(e: &Explanation, dir: &Path) -> Result<Vec<NeighbourRecord>> {
    let mut listed: Vec<(Neighbour, String, Option<&PairExplanation>)> = e
        .pairs
        .iter()
        .map(|p| (p.other.clone(), p.role.to_string(), Some(p)))
        .collect();
    let paired = e.pairs.iter().filter(|p| p.role == "neighbour").count();
    listed.extend(
        e.prediction
            .neighbours
            .iter()
            .skip(paired)
            .map(|n| (n.clone(), "neighbour".to_string(), None)),
    );
    let mut neighbours = Vec::new();
    for (j, (n, role, pair)) in listed.into_iter().enumerate() {
        let thumb = format!("neighbour-{j}.jpg");
        write_jpeg(
            &dir.join(&thumb),
            &shrink(&decode_rgb(&n.path)?, THUMBNAIL_SIDE),
        )?;
        let pair = match pair {
            Some(p) => Some(write_pair(p, j, dir, &e.input)?),
            None => None,
        };
        neighbours.push(NeighbourRecord {
            path: n.path,
            class: n.class,
            distance: n.distance,
            role,
            thumbnail: thumb,
            pair,
        });
    }
    Ok(neighbours)
}

/// Writes the `j`-th pair's maps into `dir`.
fn write_pair(p: &PairExplanation, j: usize, dir: &Path, input: &RgbImage) -> Result<PairRecord> {
    let q = write_map_pngs(dir, &format!("pair-{j}-query"), &p.query, input)?;
    let o = write_map_pngs(
        dir,
        &format!("pair-{j}-neighbour"),
        &p.other_map,
        &p.other_image,
    )?;
    Ok(PairRecord {
        similarity: p.similarity,
        query: MapRecord {
            status: p.query.status,
            files: q,
        },
        neighbour: MapRecord {
            status: p.other_map.status,
            files: o,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::is_explanation_image;

    #[test]
    fn only_the_names_an_explanation_writes_count_as_its_images() {
        for ours in [
            "gradcam.png",
            "gradcam-overlay.png",
            "guided_gradcam.png",
            "pair-0-query-overlay.png",
            "pair-12-neighbour.png",
            "neighbour-3.jpg",
        ] {
            assert!(is_explanation_image(ours), "{ours}");
        }
        for theirs in [
            "mine.png",
            "image.jpg",
            "gradcam.jpg",
            "pair-x.png",
            "neighbour-.jpg",
            "neighbour-1.png",
            "notes.txt",
        ] {
            assert!(!is_explanation_image(theirs), "{theirs}");
        }
    }
}
