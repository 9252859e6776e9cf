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

use super::gradcam::gradcam_maps;
use super::guided::{dead_images, display_maps, guided_backprop};
use super::guided_gradcam::guided_gradcam;
use super::input::{load_inputs, Inputs};
use super::map::SaliencyMap;
use super::pair::{decompose, pair_maps};
use super::render::{display_image, write_map_pngs};
use super::saliency::{gradients, Explainable};
use super::target::{class_centroid, cosine_score, first_other, TargetChoice};
use super::transfer::{transfer_gradcam, WeightStore, DEFAULT_TRANSFER_K};
use super::vanilla::gradient_heat_maps;
use crate::atomic::{write_json, write_png};
use crate::data::decode::decode_rgb;
use crate::eval::gallery::Gallery;
use crate::eval::phase_model::PhaseModel;
use crate::eval::predict::{embed_files, predict_embeddings, Neighbour, Prediction};
use crate::imaging::{shrink, write_jpeg};
use crate::model::layers::apply_activation;
use crate::run::RunDir;
use crate::search::knn::k_nearest;
use crate::tensor_io::write_safetensors;
use anyhow::{bail, Result};
use image::{DynamicImage, RgbImage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tch::{Device, Kind, Tensor};

/// A saliency method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Grad-CAM against the target similarity.
    GradCam,
    /// Grad-CAM with weights transferred from the nearest stored training images.
    Transfer,
    /// Similarity decomposition of the image and each neighbour.
    Pair,
    /// ∂score/∂pixels.
    Vanilla,
    /// Guided backprop.
    Guided,
    /// Guided backprop × Grad-CAM.
    GuidedGradCam,
}

impl Method {
    /// Every method, in page order.
    pub const ALL: [Method; 6] = [
        Method::GradCam,
        Method::Transfer,
        Method::Vanilla,
        Method::Guided,
        Method::GuidedGradCam,
        Method::Pair,
    ];

    /// The name in files, JSON and on the command line (`guided-gradcam` is accepted too).
    pub fn name(self) -> &'static str {
        match self {
            Method::GradCam => "gradcam",
            Method::Transfer => "transfer",
            Method::Pair => "pair",
            Method::Vanilla => "vanilla",
            Method::Guided => "guided",
            Method::GuidedGradCam => "guided_gradcam",
        }
    }

    /// A title for pages.
    pub fn title(self) -> &'static str {
        match self {
            Method::GradCam => "Grad-CAM",
            Method::Transfer => "Grad-CAM, transferred weights",
            Method::Pair => "Similarity decomposition",
            Method::Vanilla => "Vanilla backprop",
            Method::Guided => "Guided backprop",
            Method::GuidedGradCam => "Guided Grad-CAM",
        }
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        let key = s.trim().to_ascii_lowercase().replace('-', "_");
        Method::ALL
            .into_iter()
            .find(|m| m.name() == key || (key == "grad_cam" && *m == Method::GradCam))
            .ok_or_else(|| format!("unknown method {s:?}: expected gradcam, transfer, pair, vanilla, guided, guided-gradcam or all"))
    }
}

/// What to explain and how.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// Methods to run.
    pub methods: Vec<Method>,
    /// What the score compares each image with.
    pub target: TargetChoice,
    /// Nearest training images listed (and given pair maps), and the majority vote's k.
    pub k: usize,
    /// Stored neighbours whose weights weight transfer averages.
    pub transfer_k: usize,
    /// Images per forward/backward pass.
    pub batch_size: usize,
    /// How many of the k neighbours get pair maps (nearest first).
    pub pair_neighbours: usize,
}

impl Default for ExplainOptions {
    fn default() -> Self {
        ExplainOptions {
            methods: Method::ALL.to_vec(),
            target: TargetChoice::Nearest,
            k: 10,
            transfer_k: DEFAULT_TRANSFER_K,
            batch_size: 16,
            pair_neighbours: usize::MAX,
        }
    }
}

/// Pair maps of the explained image and one other image.
pub struct PairExplanation {
    /// The other image (a nearest training image, or the `--reference` image).
    pub other: Neighbour,
    /// `neighbour` or `reference`.
    pub role: &'static str,
    /// Cosine similarity of the two pooled feature vectors (the maps' sum).
    pub similarity: f64,
    /// Where the explained image resembles the other.
    pub query: SaliencyMap,
    /// Where the other resembles the explained image.
    pub other_map: SaliencyMap,
    /// The other image as the network sees it.
    pub other_image: RgbImage,
}

/// The target an image's score was computed against.
#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// `nearest`, `class` or `reference`.
    pub kind: String,
    /// The class (nearest: the neighbour's class; class: the class).
    pub class: Option<String>,
    /// The image (nearest neighbour or reference image).
    pub path: Option<PathBuf>,
    /// cos(embedding, target).
    pub score: f64,
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
}

fn rows(t: &Tensor) -> Vec<Vec<i64>> {
    Vec::try_from(t).unwrap_or_default()
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
        })
    }

    /// The weight-transfer store (read or computed on first use); the flag says whether it
    /// was computed now.
    pub fn weight_store(&mut self) -> Result<(&WeightStore, bool)> {
        let mut computed = false;
        if self.store.is_none() {
            let (s, c) = WeightStore::load_or_compute(&self.run, self.pm)?;
            self.store = Some(s);
            computed = c;
        }
        Ok((self.store.as_ref().expect("store just set"), computed))
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

    /// Explains images in chunks of `opts.batch_size`.
    pub fn explain(
        &mut self,
        paths: &[PathBuf],
        opts: &ExplainOptions,
    ) -> Result<Vec<Explanation>> {
        if opts.methods.contains(&Method::Transfer) {
            self.weight_store()?;
        }
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(opts.batch_size.max(1)) {
            out.extend(self.explain_chunk(chunk, opts)?);
        }
        Ok(out)
    }

    /// Target embeddings `[B, D]` for a chunk and what they are.
    fn targets(
        &self,
        embeddings: &Tensor,
        nearest: &[Vec<i64>],
        distances: &[Vec<f32>],
        opts: &ExplainOptions,
    ) -> Result<(Tensor, Vec<TargetInfo>)> {
        let m = &self.gallery.manifest;
        match &opts.target {
            TargetChoice::Nearest => {
                let mut rows_t = Vec::new();
                let mut info = Vec::new();
                for (row, d) in nearest.iter().zip(distances) {
                    let d: Vec<f64> = d.iter().map(|&x| x as f64).collect();
                    let j = row[first_other(&d)];
                    let e = &m.entries[j as usize];
                    rows_t.push(self.gallery.embeddings.get(j));
                    info.push(TargetInfo {
                        kind: "nearest".into(),
                        class: Some(m.classes[e.label].clone()),
                        path: Some(e.path.clone()),
                        score: 0.0,
                    });
                }
                Ok((Tensor::stack(&rows_t, 0), info))
            }
            TargetChoice::Class(name) => {
                let Some(label) = m.classes.iter().position(|c| c == name) else {
                    let some: Vec<&str> = m.classes.iter().take(5).map(String::as_str).collect();
                    bail!(
                        "--class {name:?} is not a class of this run (classes include {})",
                        some.join(", ")
                    );
                };
                let c = class_centroid(&self.gallery.embeddings, &self.labels, label, name)?;
                let b = embeddings.size()[0];
                let info = (0..b)
                    .map(|_| TargetInfo {
                        kind: "class".into(),
                        class: Some(name.clone()),
                        path: None,
                        score: 0.0,
                    })
                    .collect();
                Ok((c.unsqueeze(0).expand([b, -1], false).contiguous(), info))
            }
            TargetChoice::Reference(path) => {
                let e = embed_files(
                    &self.pm.model.net,
                    std::slice::from_ref(path),
                    self.pm.exp.test_transform(),
                    self.pm.exp.device,
                )?;
                let b = embeddings.size()[0];
                let class = self.true_class(path);
                let info = (0..b)
                    .map(|_| TargetInfo {
                        kind: "reference".into(),
                        class: class.clone(),
                        path: Some(path.clone()),
                        score: 0.0,
                    })
                    .collect();
                Ok((e.expand([b, -1], false).contiguous(), info))
            }
        }
    }

    fn explain_chunk(
        &mut self,
        paths: &[PathBuf],
        opts: &ExplainOptions,
    ) -> Result<Vec<Explanation>> {
        let pm = self.pm;
        let net = &pm.model.net;
        let device = pm.exp.device;
        let distance = pm.exp.cfg.model.distance;
        let transform = pm.exp.test_transform();
        let inputs = load_inputs(paths, transform, device)?;
        let x = &inputs.tensor;
        let (_, _, h, w) = x.size4()?;
        let b = paths.len();
        let want = |m: Method| opts.methods.contains(&m);

        let (e0, a0) = tch::no_grad(|| net.forward_explained(x, &mut apply_activation));
        let e0 = e0.to_device(Device::Cpu);
        let k = opts.k.clamp(1, self.gallery.manifest.entries.len().max(1));
        let predictions = predict_embeddings(&self.gallery, &e0, paths, k, distance)?;
        let (idx, dist) = k_nearest(&e0, &self.gallery.embeddings, k as i64, distance);
        let (idx, dist) = (
            rows(&idx),
            Vec::<Vec<f32>>::try_from(&dist).unwrap_or_default(),
        );
        let (targets, mut target_info) = self.targets(&e0, &idx, &dist, opts)?;
        let targets = targets.to_kind(Kind::Float).to_device(device);
        let score = |e: &Tensor| cosine_score(e, &targets);
        let scores: Vec<f64> = Vec::try_from(
            cosine_score(&e0.to_device(device), &targets)
                .to_kind(Kind::Double)
                .to_device(Device::Cpu),
        )?;
        for (t, s) in target_info.iter_mut().zip(&scores) {
            t.score = *s;
        }

        let mut maps: Vec<BTreeMap<String, SaliencyMap>> =
            (0..b).map(|_| BTreeMap::new()).collect();
        let mut arrays: Vec<Vec<(String, Tensor)>> = (0..b).map(|_| Vec::new()).collect();
        let cpu = |t: &Tensor, i: usize| {
            t.get(i as i64)
                .detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
        };
        fn put(
            maps: &mut [BTreeMap<String, SaliencyMap>],
            arrays: &mut [Vec<(String, Tensor)>],
            name: &str,
            list: Vec<SaliencyMap>,
        ) {
            for (i, m) in list.into_iter().enumerate() {
                arrays[i].push((name.to_string(), m.to_tensor().squeeze_dim(0)));
                maps[i].insert(name.to_string(), m);
            }
        }

        let mut cams: Option<Vec<SaliencyMap>> = None;
        if want(Method::GradCam) || want(Method::Vanilla) || want(Method::GuidedGradCam) {
            let g = gradients(net, x, &score, want(Method::Vanilla));
            let (cam, weights) = gradcam_maps(&g, h, w);
            for (i, a) in arrays.iter_mut().enumerate() {
                a.push(("gradcam_weights".into(), cpu(&weights, i)));
            }
            if let Some(ig) = &g.input_grads {
                for (i, a) in arrays.iter_mut().enumerate() {
                    a.push(("vanilla_gradient".into(), cpu(ig, i)));
                }
                put(
                    &mut maps,
                    &mut arrays,
                    "vanilla",
                    gradient_heat_maps(ig, &g.dead()),
                );
            }
            if want(Method::GradCam) {
                put(&mut maps, &mut arrays, "gradcam", cam.clone());
            }
            cams = Some(cam);
        }
        if want(Method::Guided) || want(Method::GuidedGradCam) {
            let rg = guided_backprop(net, x, &score);
            let dead = dead_images(&rg);
            for (i, a) in arrays.iter_mut().enumerate() {
                a.push(("guided_gradient".into(), cpu(&rg.input_grads, i)));
            }
            if want(Method::Guided) {
                put(
                    &mut maps,
                    &mut arrays,
                    "guided",
                    display_maps(&rg.input_grads, &dead),
                );
            }
            if want(Method::GuidedGradCam) {
                let (product, display) =
                    guided_gradcam(&rg.input_grads, cams.as_deref().unwrap_or_default(), &dead);
                for (i, a) in arrays.iter_mut().enumerate() {
                    a.push(("guided_gradcam_product".into(), cpu(&product, i)));
                }
                put(&mut maps, &mut arrays, "guided_gradcam", display);
            }
        }
        if want(Method::Transfer) {
            let transfer_k = opts.transfer_k;
            let (store, _) = self.weight_store()?;
            let (tmaps, weights, _) = transfer_gradcam(net, x, store, transfer_k, distance);
            for (i, a) in arrays.iter_mut().enumerate() {
                a.push(("transfer_weights".into(), cpu(&weights, i)));
            }
            put(&mut maps, &mut arrays, "transfer", tmaps);
        }

        let mut pairs: Vec<Vec<PairExplanation>> = (0..b).map(|_| Vec::new()).collect();
        if want(Method::Pair) {
            for i in 0..b {
                let mut others: Vec<(Neighbour, &'static str)> = Vec::new();
                if let TargetChoice::Reference(p) = &opts.target {
                    let d = 1.0 - target_info[i].score;
                    let class = target_info[i].class.clone().unwrap_or_default();
                    others.push((
                        Neighbour {
                            class,
                            distance: d,
                            path: p.clone(),
                        },
                        "reference",
                    ));
                }
                others.extend(
                    predictions[i]
                        .neighbours
                        .iter()
                        .take(opts.pair_neighbours)
                        .map(|n| (n.clone(), "neighbour")),
                );
                let other_paths: Vec<PathBuf> =
                    others.iter().map(|(n, _)| n.path.clone()).collect();
                let other_inputs: Inputs = load_inputs(&other_paths, transform, device)?;
                let (_, a_n) = tch::no_grad(|| {
                    net.forward_explained(&other_inputs.tensor, &mut apply_activation)
                });
                let n = other_paths.len() as i64;
                let a_q = a0.get(i as i64).unsqueeze(0).expand([n, -1, -1, -1], false);
                let terms = decompose(&a_q, &a_n);
                let qmaps = pair_maps(&terms.query, h, w);
                let (_, _, hn, wn) = other_inputs.tensor.size4()?;
                let nmaps = pair_maps(&terms.neighbour, hn, wn);
                let sims: Vec<f64> =
                    Vec::try_from(terms.cosine.to_kind(Kind::Double).to_device(Device::Cpu))?;
                for (j, (((other, role), (q, nm)), img)) in others
                    .into_iter()
                    .zip(qmaps.into_iter().zip(nmaps))
                    .zip(other_inputs.images)
                    .enumerate()
                {
                    arrays[i].push((format!("pair_{j}_query"), q.to_tensor().squeeze_dim(0)));
                    arrays[i].push((format!("pair_{j}_other"), nm.to_tensor().squeeze_dim(0)));
                    pairs[i].push(PairExplanation {
                        other,
                        role,
                        similarity: sims[j],
                        query: q,
                        other_map: nm,
                        other_image: img,
                    });
                }
            }
        }

        let mut out = Vec::with_capacity(b);
        for (i, ((((image, input), prediction), target), (m, (a, p)))) in inputs
            .paths
            .into_iter()
            .zip(inputs.images)
            .zip(predictions)
            .zip(target_info)
            .zip(maps.into_iter().zip(arrays.into_iter().zip(pairs)))
            .enumerate()
        {
            let _ = i;
            let true_class = self.true_class(&image);
            out.push(Explanation {
                image,
                input,
                true_class,
                prediction,
                target,
                maps: m,
                arrays: a,
                pairs: p,
            });
        }
        Ok(out)
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
        &DynamicImage::ImageRgb8(display_image(&e.input)),
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
    let mut neighbours = Vec::new();
    let pair_by_path: Vec<&PairExplanation> = e.pairs.iter().collect();
    let mut listed: Vec<(Neighbour, String, Option<&PairExplanation>)> = Vec::new();
    // Pairs come first in neighbour order (reference image first); neighbours beyond
    // `pair_neighbours` follow without pair maps.
    listed.extend(
        pair_by_path
            .iter()
            .map(|p| (p.other.clone(), p.role.to_string(), Some(*p))),
    );
    let paired = pair_by_path
        .iter()
        .filter(|p| p.role == "neighbour")
        .count();
    listed.extend(
        e.prediction
            .neighbours
            .iter()
            .skip(paired)
            .map(|n| (n.clone(), "neighbour".to_string(), None)),
    );
    for (j, (n, role, pair)) in listed.into_iter().enumerate() {
        let thumb = format!("neighbour-{j}.jpg");
        write_jpeg(
            &dir.join(&thumb),
            &shrink(&decode_rgb(&n.path)?, THUMBNAIL_SIDE),
        )?;
        let pair = match pair {
            Some(p) => {
                let q = write_map_pngs(dir, &format!("pair-{j}-query"), &p.query, &e.input)?;
                let o = write_map_pngs(
                    dir,
                    &format!("pair-{j}-neighbour"),
                    &p.other_map,
                    &p.other_image,
                )?;
                Some(PairRecord {
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
    };
    write_json(&dir.join(crate::run::explanations::ITEM_FILE), &record)?;
    crate::atomic::write_atomic(
        &dir.join("index.html"),
        super::page::explanation_page(&record, title, nav).as_bytes(),
    )?;
    Ok(record)
}
