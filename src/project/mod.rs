//! 2-D maps of the embedding space: UMAP and t-SNE layouts with quality measures,
//! scatter plots, the interactive HTML map, exports, nearest-neighbour galleries.
//!
//! [`project_phase`] reads a phase's stored embeddings (`embeddings.safetensors`,
//! `embeddings.json`; train rows then test rows) and writes:
//!
//! ```text
//! runs/X/phase-P/projections/
//!   umap.csv, tsne.csv    index,split,label,class,unseen,x,y,path   (one row per point;
//!                         index = row in train-then-test order, split = train|test,
//!                         unseen = class held out by the protocol (last N classes),
//!                         RFC 4180 quoting)
//!   umap.json, tsne.json  {method, points, dims, params{...}, seconds, trustworthiness,
//!                          knn_label_agreement, pca_dims, distance, duplicates}
//!                         (trustworthiness: scikit-learn's, k = 15, input space =
//!                          the embeddings, unit rows for cosine runs; knn_label_agreement:
//!                          share of the 15 nearest 2-D neighbours with the same class)
//!   umap.png, umap.svg, tsne.png, tsne.svg         scatter plots
//!   umap-thumbnails.jpg, tsne-thumbnails.jpg       with --thumbnails
//!   umap-moves.png, tsne-moves.png   phase-seen only, aligned onto phase-all's map of
//!                         the same method ([`align`]): arrows from each held-out class's
//!                         centroid there to its centroid here
//!   umap.html, tsne.html  interactive map (hover: thumbnail, class, split, 5 nearest
//!                         neighbours in the embedding space; click: the point's gallery
//!                         entry ../galleries/index.html#q<N>, else #p<N> on the map)
//!   sprite-<k>.jpg, sprite.json   hover thumbnails in tiled sheets of at most 2048 px:
//!                         {stem, cell, columns, rows, sheets, count}; point i is cell
//!                         j = i % (columns·rows) of sheet k = i / (columns·rows), at
//!                         column j % columns, row j / columns
//!   added.json            points placed later by `project --add` (see [`add`])
//!   added-sprite-<k>.jpg, added-sprite.json   their thumbnails
//!   tensorboard/          vectors.tsv, metadata.tsv (class, split, unseen), sprite.jpg
//!                         (one sheet, at most 8192 px a side), projector_config.pbtxt
//! runs/X/phase-P/galleries/
//!   galleries.json        {"items":[{id:"q<N>", query, true_class, predicted, majority,
//!                          correct, unseen, cell, neighbours:[{path, class, distance,
//!                          correct, cell}], top_classes:[{class, votes}]}],
//!                          "thumbs":{sprite:{…as sprite.json}, dir}}: each thumbnail is
//!                          a cell of the map's sprite-<k>.jpg (dir "../projections/")
//!                          when its cells are 64 px or more, else of thumbs-<k>.jpg here
//!   thumbs-<k>.jpg, thumbs.json   the gallery's own sheets, each image shown once
//!   index.html            every query, anchored at its id: query and its 10 nearest
//!                         training images as framed cells, captions as text
//! ```
//!
//! `N` is always the point's row in train-then-test order.

pub mod add;
pub mod align;
pub mod data;
pub mod export;
pub mod gallery;
pub mod gallery_strip;
pub mod input;
pub mod map;
pub mod plot;
pub mod pow_lanes;
pub mod quality;
pub mod spectral;
pub mod sprites;
pub mod tsne;
pub mod tsne_fft;
pub mod tsne_linfa;
pub mod umap;

use crate::atomic::{write_atomic, write_json};
use crate::config::Phase;
use crate::data::rng::Rng;
use crate::device::onto;
use crate::progress::Progress;
use crate::run::lock::RunLock;
pub use crate::run::projections::ProjectionRecord;
use crate::run::projections::{
    file_name, moves_name, thumbnails_name, AddedRecord, ADDED_FILE, ADDED_SPRITE_STEM,
    SPRITE_STEM, TENSORBOARD_DIR,
};
use crate::run::record::read_record;
use crate::run::record::SCHEMA_VERSION;
use crate::run::RunDir;
use crate::search::knn::{k_nearest_with, Exclude, KnnOptions};
use crate::search::Distance;
use anyhow::{Context, Result};
use data::PhaseData;
use input::Matrix;
use serde::Serialize;
use sprites::SpriteInfo;
use std::path::PathBuf;
use std::time::Instant;

/// A layout method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// UMAP ([`umap`]).
    Umap,
    /// t-SNE ([`tsne`]).
    Tsne,
}

impl Method {
    /// File stem and JSON name: `umap` or `tsne`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Umap => "umap",
            Method::Tsne => "tsne",
        }
    }

    /// Display name.
    pub fn title(self) -> &'static str {
        match self {
            Method::Umap => "UMAP",
            Method::Tsne => "t-SNE",
        }
    }
}

/// What [`project_phase`] does.
#[derive(Debug, Clone)]
pub struct ProjectOptions {
    /// Layouts to compute.
    pub methods: Vec<Method>,
    /// UMAP parameters (umap-learn's defaults).
    pub umap: umap::UmapParams,
    /// t-SNE parameters (openTSNE's defaults).
    pub tsne: tsne::TsneParams,
    /// Which t-SNE implementation (ours unless told).
    pub tsne_engine: tsne::TsneEngine,
    /// Reduce to this many dimensions by PCA first (when the embeddings have more).
    pub pca_dims: Option<usize>,
    /// Also draw the thumbnail maps.
    pub thumbnails: bool,
    /// Gallery queries and neighbours.
    pub gallery: gallery::GalleryOptions,
    /// Device of the exact kNN searches: hover neighbours and UMAP's kNN graph
    /// (`--device`; t-SNE's affinities still search on the CPU).
    pub device: tch::Device,
}

impl Default for ProjectOptions {
    fn default() -> Self {
        ProjectOptions {
            methods: vec![Method::Umap, Method::Tsne],
            umap: Default::default(),
            tsne: Default::default(),
            tsne_engine: Default::default(),
            pca_dims: None,
            thumbnails: false,
            gallery: Default::default(),
            device: tch::Device::Cpu,
        }
    }
}

impl ProjectOptions {
    /// These options with one seed for UMAP's initial layout and sampling and for the
    /// gallery sample.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.umap.seed = seed;
        self.gallery.seed = seed;
        self
    }
}

/// What [`project_phase`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectSummary {
    /// The phase.
    pub phase: Phase,
    /// `runs/X/phase-P/projections`.
    pub projections_dir: PathBuf,
    /// `runs/X/phase-P/galleries`.
    pub galleries_dir: PathBuf,
    /// Number of points.
    pub points: usize,
    /// One record per layout.
    pub projections: Vec<ProjectionRecord>,
    /// Gallery queries written.
    pub gallery_items: usize,
    /// Images that could not be read (drawn grey).
    pub missing_images: usize,
}

/// Neighbours shown on hover.
const HOVER_NEIGHBOURS: usize = 5;

/// Projects one phase of a run: layouts, their quality, plots, maps, exports and
/// galleries (file list in the module doc). Every file is written atomically.
/// Long: the phase's steps in the order their outputs depend on each other; each step
/// is a call, and splitting further would only pass the same dozen values around.
pub fn project_phase(run: &RunDir, phase: Phase, opts: &ProjectOptions) -> Result<ProjectSummary> {
    // The lock would create a missing directory: refuse a non-run before taking it.
    if !crate::run::is_run_dir(&run.root) {
        anyhow::bail!(
            "{}: not a run directory (no config.toml)",
            run.root.display()
        );
    }
    let _lock = RunLock::acquire(&run.root, "project")?;
    let data = data::load_phase(run, phase)?;
    let source = data.dir.embeddings().display().to_string();
    let min_neighbours = if opts.methods.contains(&Method::Umap) {
        opts.umap.n_neighbors
    } else {
        3
    };
    let report = input::validate(&data.embeddings, min_neighbours, &source)?;
    let out = data.dir.projections();
    let galleries_dir = data.dir.galleries_dir();
    let n = data.len();

    // The space distances are measured in: unit rows for cosine, then optional PCA.
    let space = input::for_distance(&data.embeddings, data.distance);
    let pca_dims = opts.pca_dims.filter(|&d| d > 0 && d < space.cols);
    let reduced = match pca_dims {
        Some(d) => input::pca(&space, d)?,
        None => space.clone(),
    };

    // Steps: hover kNN, sprites, galleries, then each layout and its quality and pages.
    let bar = Progress::steps(
        3 + 2 * opts.methods.len(),
        &format!("project {}", phase.dir_name()),
    );
    bar.step("kNN of every point (hover neighbours)");
    let neighbours = hover_neighbours(&data, opts.device)?;

    // Maps to link: the ones made now and any made before.
    let maps: Vec<Method> = [Method::Umap, Method::Tsne]
        .into_iter()
        .filter(|m| opts.methods.contains(m) || out.join(file_name(m.name(), "html")).exists())
        .collect();

    bar.step("thumbnails and sprites");
    // Thumbnails: the hover sheets, the TensorBoard sprite and the thumbnail maps.
    let (thumbs, missing_images) = sprites::load_thumbnails(&data.paths, 64);
    let sprite = sprites::write_sprites(&out, SPRITE_STEM, &thumbs)?;
    export::tensorboard(&data, &out.join(TENSORBOARD_DIR), Some(&thumbs))?;

    // Galleries before the maps, which link to their entries; they draw their
    // thumbnails from the hover sheets when those are large enough.
    bar.step("nearest-neighbour galleries");
    let items = gallery::write_galleries(
        &data,
        &galleries_dir,
        &opts.gallery,
        &map_nav(&maps, "../projections/"),
        Some(&sprite),
    )?;
    // Gallery ids are `q<point index>`.
    let mut in_gallery = vec![false; n];
    for i in items
        .iter()
        .filter_map(|item| item.id[1..].parse::<usize>().ok())
    {
        in_gallery[i] = true;
    }

    let pages = MapPages {
        data: &data,
        phase,
        out: &out,
        maps: &maps,
        neighbours: &neighbours,
        in_gallery: &in_gallery,
        thumbs: &thumbs,
        sprite: &sprite,
        thumbnails: opts.thumbnails,
    };
    // Images added to the old layouts (`--add`) are placed again on the new ones.
    let added_path = out.join(ADDED_FILE);
    let mut added = read_record::<AddedRecord>(&added_path)?;
    let added_sprite = match added {
        Some(_) => read_record::<SpriteInfo>(&out.join(file_name(ADDED_SPRITE_STEM, "json")))?,
        None => None,
    };
    let mut records = Vec::new();
    for &method in &opts.methods {
        bar.step(match method {
            Method::Umap => "UMAP: kNN graph, spectral start, optimisation",
            Method::Tsne => "t-SNE: affinities, PCA start, optimisation",
        });
        let start = Instant::now();
        let (layout, params) =
            compute_layout(method, &data, &reduced, pca_dims.is_some(), opts, &bar)
                .with_context(|| format!("{} of {source}", method.title()))?;
        let seconds = start.elapsed().as_secs_f64();
        bar.step(&format!("{} quality, plots and pages", method.title()));
        let (layout, aligned_to) = align_seen(run, phase, &data, layout, method)?;
        let (trustworthiness, knn_label_agreement) = layout_quality(&space, &layout, &data.labels)?;
        let record = ProjectionRecord {
            schema_version: SCHEMA_VERSION,
            method: method.name().to_string(),
            points: n,
            dims: data.embeddings.cols,
            params,
            seconds,
            trustworthiness,
            knn_label_agreement,
            pca_dims,
            distance: Some(data.distance),
            duplicates: report.duplicates,
            aligned_to,
        };
        let view = match added.as_mut() {
            Some(a) => {
                add::replace_on(a, &data, method, &layout)?;
                Some(add::AddedView::new(a, method)?)
            }
            None => None,
        };
        let points = view.as_ref().and_then(|v| v.points(added_sprite.as_ref()));
        pages.write(method, &layout, &record, points)?;
        write_json(&data.dir.projection_record(method.name()), &record)?;
        records.push(record);
    }
    bar.finish();
    if let Some(a) = &added {
        write_json(&added_path, a)?;
    }
    Ok(ProjectSummary {
        phase,
        projections_dir: out,
        galleries_dir,
        points: n,
        projections: records,
        gallery_items: items.len(),
        missing_images,
    })
}

/// Phase-seen's layout turned onto phase-all's map of the same method, when that map
/// exists, so the two read side by side ([`align`]); other phases' layouts as they are.
fn align_seen(
    run: &RunDir,
    phase: Phase,
    data: &PhaseData,
    layout: Matrix,
    method: Method,
) -> Result<(Matrix, Option<crate::run::projections::Alignment>)> {
    let reference = run
        .phase(Phase::All)
        .projections()
        .join(file_name(method.name(), "csv"));
    if phase != Phase::Seen || !reference.is_file() {
        return Ok((layout, None));
    }
    let Some((aligned, alignment)) =
        align::align_to(data, &layout, &reference, Phase::All.dir_name())?
    else {
        return Ok((layout, None));
    };
    let moves = align::class_moves(data, &aligned, &reference)?;
    if !moves.is_empty() {
        let title = format!(
            "{}: held-out classes from phase-all (ring) to phase-seen (dot)",
            method.title()
        );
        plot::moves_png(
            data,
            &aligned,
            &moves,
            &title,
            &data.dir.projections().join(moves_name(method.name())),
        )?;
    }
    Ok((aligned, Some(alignment)))
}

/// A layout's quality: trustworthiness (against `space`, the space distances were
/// measured in) and 2-D kNN label agreement.
fn layout_quality(space: &Matrix, layout: &Matrix, labels: &[i64]) -> Result<(f64, f64)> {
    let k = quality::QUALITY_K.min((layout.rows - 1) / 2).max(1);
    Ok((
        quality::trustworthiness(space, layout, k, Distance::Euclidean)?,
        quality::knn_label_agreement(layout, labels, k)?,
    ))
}

/// Each point's nearest other points in the embedding space (the run's distance),
/// shown on hover.
fn hover_neighbours(data: &PhaseData, device: tch::Device) -> Result<Vec<Vec<(usize, f32)>>> {
    let x = onto(&data.embeddings.to_tensor(), device);
    let options = KnnOptions {
        exclude: Exclude::SameIndex,
        ..Default::default()
    };
    let (idx, dist) = k_nearest_with(
        &x,
        &x,
        HOVER_NEIGHBOURS.min(data.len() - 1) as i64,
        data.distance,
        &options,
    );
    let (idx, dist) = (
        idx.to_device(tch::Device::Cpu),
        dist.to_device(tch::Device::Cpu),
    );
    let idx = Vec::<Vec<i64>>::try_from(&idx).context("reading hover neighbour indices")?;
    let dist = Vec::<Vec<f32>>::try_from(&dist.to_kind(tch::Kind::Float))
        .context("reading hover neighbour distances")?;
    Ok(idx
        .iter()
        .zip(&dist)
        .map(|(r, d)| r.iter().zip(d).map(|(&j, &d)| (j as usize, d)).collect())
        .collect())
}

/// Navigation links to the maps in `maps`, from a page at `prefix` relative to
/// `projections/`.
fn map_nav(maps: &[Method], prefix: &str) -> Vec<(String, String)> {
    maps.iter()
        .map(|m| {
            (
                format!("{prefix}{}", file_name(m.name(), "html")),
                format!("{} map", m.title()),
            )
        })
        .collect()
}

/// One layout of the phase and the parameters that made it (for its record).
fn compute_layout(
    method: Method,
    data: &PhaseData,
    reduced: &Matrix,
    pca: bool,
    opts: &ProjectOptions,
    bar: &Progress,
) -> Result<(Matrix, serde_json::Value)> {
    match method {
        Method::Umap => {
            // Cosine runs: UMAP measures cosine itself, as umap-learn's metric="cosine".
            let (points, distance) = if pca {
                (reduced, Distance::Euclidean)
            } else {
                (&data.embeddings, data.distance)
            };
            let layout = umap::umap_on(points, distance, &opts.umap, opts.device, bar)?;
            let mut params = serde_json::to_value(&opts.umap)?;
            params["n_epochs"] = serde_json::json!(opts.umap.epochs_for(data.len()));
            Ok((layout, params))
        }
        Method::Tsne => {
            let result = opts
                .tsne_engine
                .layout(reduced, &opts.tsne)
                .with_context(|| format!("engine {}", opts.tsne_engine.name()))?;
            let mut params = serde_json::to_value(&opts.tsne)?;
            params["engine"] = serde_json::json!(opts.tsne_engine.name());
            params["perplexity"] = serde_json::json!(result.perplexity);
            params["requested_perplexity"] = serde_json::json!(opts.tsne.perplexity);
            if opts.tsne_engine == tsne::TsneEngine::Ours {
                // `method` is what was asked ("auto"); this is what ran on these points.
                params["resolved_method"] =
                    serde_json::json!(opts.tsne.method.resolve(reduced.rows).name());
            }
            Ok((result.layout, params))
        }
    }
}

/// What every layout's files of one phase share: the data, the hover neighbours, the
/// gallery entries and the thumbnails.
struct MapPages<'a> {
    data: &'a PhaseData,
    phase: Phase,
    out: &'a std::path::Path,
    maps: &'a [Method],
    neighbours: &'a [Vec<(usize, f32)>],
    in_gallery: &'a [bool],
    thumbs: &'a [image::RgbImage],
    sprite: &'a SpriteInfo,
    thumbnails: bool,
}

impl MapPages<'_> {
    /// Writes one layout's CSV, PNG and SVG scatter plots, thumbnail map and HTML map
    /// (with the points of `added`, placed on this layout, when there are any).
    fn write(
        &self,
        method: Method,
        layout: &Matrix,
        record: &ProjectionRecord,
        added: Option<map::AddedPoints>,
    ) -> Result<()> {
        let (data, out, n) = (self.data, self.out, self.data.len());
        let name = method.name();
        let title = format!(
            "{} — {} ({} points)",
            method.title(),
            self.phase.dir_name(),
            n
        );
        write_atomic(
            &out.join(file_name(name, "csv")),
            export::layout_csv(data, layout).as_bytes(),
        )?;
        plot::scatter_png(data, layout, &title, &out.join(file_name(name, "png")))?;
        plot::scatter_svg(data, layout, &title, &out.join(file_name(name, "svg")))?;
        if self.thumbnails {
            let side = if n > 2000 { 24 } else { 32 };
            plot::thumbnail_jpeg(
                data,
                layout,
                &title,
                self.thumbs,
                side,
                &out.join(thumbnails_name(name)),
            )?;
        }
        self.write_page(method, layout, record, added)
    }

    /// Writes one layout's HTML map.
    fn write_page(
        &self,
        method: Method,
        layout: &Matrix,
        record: &ProjectionRecord,
        added: Option<map::AddedPoints>,
    ) -> Result<()> {
        let (data, n) = (self.data, self.data.len());
        let facts = format!(
            "{} points ({} train, {} test) · trustworthiness {:.3} · kNN label agreement {:.3} · {:.1} s",
            n,
            data.n_train,
            n - data.n_train,
            record.trustworthiness,
            record.knn_label_agreement,
            record.seconds
        );
        let mut nav = map_nav(self.maps, "");
        nav.push((
            "../galleries/index.html".to_string(),
            "galleries".to_string(),
        ));
        let page = map::MapPage {
            title: format!("{} — {}", method.title(), self.phase.dir_name()),
            facts,
            neighbours: self.neighbours,
            gallery: self.in_gallery,
            sprite: Some(self.sprite),
            added,
            nav,
        };
        write_atomic(
            &self.out.join(file_name(method.name(), "html")),
            map::map_html(data, layout, &page).as_bytes(),
        )?;
        Ok(())
    }
}

/// A standard normal draw (Box–Muller) from the project's seeded generator.
pub(crate) fn normal(rng: &mut Rng) -> f64 {
    let u = rng.next_f64().max(f64::MIN_POSITIVE);
    let v = rng.next_f64();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Clustered synthetic points for tests and benchmarks: `clusters` centres drawn from
/// a standard normal in `dim` dimensions, each point a centre plus normal noise of
/// standard deviation `noise`, centres taken in turn. Returns the points and their
/// cluster labels. Deterministic for a seed.
pub fn clustered_points(
    n: usize,
    dim: usize,
    clusters: usize,
    noise: f64,
    seed: u64,
) -> (input::Matrix, Vec<i64>) {
    let mut rng = Rng::new(seed);
    let clusters = clusters.max(1);
    let centres: Vec<f64> = (0..clusters * dim).map(|_| normal(&mut rng)).collect();
    let mut data = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % clusters;
        labels.push(c as i64);
        data.extend((0..dim).map(|k| (centres[c * dim + k] + noise * normal(&mut rng)) as f32));
    }
    (
        input::Matrix {
            rows: n,
            cols: dim,
            data,
        },
        labels,
    )
}
