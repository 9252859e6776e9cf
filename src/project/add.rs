//! New images on an existing map (`dmlviz project --add DIR`): placed on the stored
//! layouts without recomputing them, recorded in `projections/added.json`
//! ([`AddedRecord`]) and drawn on the maps ringed in black.
//!
//! Placement follows UMAP's `transform`: each new point starts at the weighted mean of
//! its `k` nearest stored points' 2-D positions (weights from UMAP's fuzzy membership,
//! `exp(−(d − d₁)/σ)`, `d₁` the nearest distance, σ set so they sum to log₂ k), then
//! a short optimisation of UMAP's cross-entropy moves it, the stored points fixed:
//! attraction to its neighbours, repulsion from random stored points, learning rate
//! falling to zero. The same runs on a t-SNE layout (its neighbourhoods are as local).
//! The record keeps each added image's embedding, so a later `dmlviz project` places
//! them again on the new layouts.

use super::data::{load_phase, PhaseData};
use super::input::Matrix;
use super::sprites::{load_thumbnails, write_sprites, SpriteInfo};
use super::{hover_neighbours, map, MapPages, Method};
use crate::atomic::write_json;
use crate::config::Phase;
use crate::data::rng::Rng;
use crate::eval::enrol::{
    acquire_patiently, all_readable, check_request, Enrolment, LOCK_PATIENCE,
};
use crate::eval::gallery_store::{GalleryStore, RunGallery};
use crate::eval::phase_model::PhaseModel;
use crate::eval::predict::embed_readable_files;
use crate::run::galleries::Galleries;
use crate::run::lock::RunLock;
use crate::run::projections::{
    file_name, AddedPoint, AddedRecord, ProjectionRecord, ADDED_FILE, ADDED_SPRITE_STEM,
    SPRITE_STEM,
};
use crate::run::record::{read_record, SCHEMA_VERSION};
use crate::run::RunDir;
use crate::search::knn::{k_nearest_with, KnnOptions};
use crate::search::Distance;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How new points are placed.
#[derive(Debug, Clone, Copy)]
pub struct AddOptions {
    /// Stored neighbours a new point is placed among (UMAP's n_neighbors).
    pub k: usize,
    /// Epochs of the short optimisation.
    pub epochs: usize,
    /// Seed of the negative samples.
    pub seed: u64,
    /// Where `project --add` embeds the images (`--device`); `index add` embeds with
    /// its own phase model.
    pub device: tch::Device,
}

impl Default for AddOptions {
    fn default() -> Self {
        AddOptions {
            k: 15,
            epochs: 30,
            seed: 42,
            device: tch::Device::Cpu,
        }
    }
}

/// What [`add_images`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AddSummary {
    /// Images placed now.
    pub added: usize,
    /// Added images on the maps in all (earlier ones included).
    pub total: usize,
    /// Layouts they were placed on (`umap`, `tsne`).
    pub methods: Vec<String>,
    /// `runs/X/phase-P/projections`.
    pub projections_dir: PathBuf,
}

/// The images under `dir` with their classes: files directly in `dir` are of the class
/// named by `dir`, files in a subfolder of the class named by the subfolder.
pub fn list_images(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let class_of = |d: &Path| {
        d.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "added".to_string())
    };
    let read = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("{}: cannot read the folder", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for entry in read(dir)? {
        if entry.is_dir() {
            let class = class_of(&entry);
            out.extend(
                read(&entry)?
                    .into_iter()
                    .filter(|p| crate::data::decode::has_image_extension(p))
                    .map(|p| (p, class.clone())),
            );
        } else if crate::data::decode::has_image_extension(&entry) {
            out.push((entry, class_of(dir)));
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no .png, .jpg or .jpeg image in it or its subfolders",
            dir.display()
        );
    }
    Ok(out)
}

/// Per point, its nearest stored points (index, distance), nearest first.
pub type Neighbours = Vec<Vec<(usize, f32)>>;

/// Positions of `new` rows on `layout` (one row per stored point of `stored`), and
/// each new row's `k` nearest stored points (index, distance), nearest first.
pub fn place(
    stored: &Matrix,
    layout: &Matrix,
    new: &Matrix,
    distance: Distance,
    opts: &AddOptions,
) -> Result<(Matrix, Neighbours)> {
    if stored.rows != layout.rows || stored.cols != new.cols {
        bail!(
            "{} stored points of {} dimensions, a layout of {} and new points of {}",
            stored.rows,
            stored.cols,
            layout.rows,
            new.cols
        );
    }
    let k = opts.k.min(stored.rows).max(1);
    let (idx, dist) = k_nearest_with(
        &new.to_tensor(),
        &stored.to_tensor(),
        k as i64,
        distance,
        &KnnOptions::default(),
    );
    let idx = Vec::<Vec<i64>>::try_from(&idx).context("reading neighbour indices")?;
    let dist = Vec::<Vec<f32>>::try_from(&dist.to_kind(tch::Kind::Float))
        .context("reading neighbour distances")?;
    let neighbours: Vec<Vec<(usize, f32)>> = idx
        .iter()
        .zip(&dist)
        .map(|(r, d)| r.iter().zip(d).map(|(&j, &d)| (j as usize, d)).collect())
        .collect();
    let (a, b) = super::umap::find_ab_params(1.0, 0.1);
    let mut rng = Rng::new(opts.seed);
    let mut out = Vec::with_capacity(new.rows * 2);
    for row in &neighbours {
        let weights = memberships(row);
        let total: f32 = weights.iter().sum();
        let mut p = [0.0f32; 2];
        for (&(j, _), w) in row.iter().zip(&weights) {
            p[0] += w * layout.row(j)[0] / total;
            p[1] += w * layout.row(j)[1] / total;
        }
        optimise(&mut p, row, &weights, layout, (a, b), opts.epochs, &mut rng);
        out.extend(p);
    }
    Ok((Matrix::new(new.rows, 2, out)?, neighbours))
}

/// UMAP's fuzzy membership of each neighbour, `exp(−(d − d₁)/σ)`, with σ found by
/// bisection so the memberships sum to log₂ k, as umap-learn's `smooth_knn_dist`.
fn memberships(row: &[(usize, f32)]) -> Vec<f32> {
    let rho = row.first().map_or(0.0, |r| r.1 as f64);
    let target = (row.len().max(2) as f64).log2();
    let weight = |d: f32, sigma: f64| (-(d as f64 - rho).max(0.0) / sigma).exp();
    let (mut lo, mut hi) = (1e-12f64, 1e12f64);
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if row.iter().map(|r| weight(r.1, mid)).sum::<f64>() > target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    row.iter().map(|r| weight(r.1, hi) as f32).collect()
}

/// UMAP's SGD for one free point among fixed ones: each epoch pulls it towards every
/// neighbour by its weight and pushes it from 5 random stored points.
fn optimise(
    p: &mut [f32; 2],
    row: &[(usize, f32)],
    weights: &[f32],
    layout: &Matrix,
    (a, b): (f32, f32),
    epochs: usize,
    rng: &mut Rng,
) {
    let clip = |v: f32| v.clamp(-4.0, 4.0);
    for e in 0..epochs {
        let lr = 1.0 - e as f32 / epochs as f32;
        for (&(j, _), &w) in row.iter().zip(weights) {
            let q = layout.row(j);
            let (dx, dy) = (p[0] - q[0], p[1] - q[1]);
            let d2 = (dx * dx + dy * dy).max(1e-12);
            let g = -2.0 * a * b * d2.powf(b - 1.0) / (1.0 + a * d2.powf(b));
            p[0] += lr * w * clip(g * dx);
            p[1] += lr * w * clip(g * dy);
            for _ in 0..5 {
                let q = layout.row((rng.next_f64() * layout.rows as f64) as usize % layout.rows);
                let (dx, dy) = (p[0] - q[0], p[1] - q[1]);
                let d2 = dx * dx + dy * dy;
                let g = 2.0 * b / ((0.001 + d2) * (1.0 + a * d2.powf(b)));
                p[0] += lr * w * clip(g * dx) * 0.2; // 5 samples share one attraction's weight
                p[1] += lr * w * clip(g * dy) * 0.2;
            }
        }
    }
}

/// The stored layout of `method` (`<method>.csv`) as a matrix, refusing one that does
/// not match the phase's points (a layout older than the embeddings).
fn stored_layout(data: &PhaseData, method: Method) -> Result<Matrix> {
    let csv = data.dir.projections().join(file_name(method.name(), "csv"));
    let rows = super::align::read_layout_csv(&csv)?;
    if rows.len() != data.len() {
        bail!(
            "{}: {} points, but the phase has {} embeddings: run `dmlviz project` again first",
            csv.display(),
            rows.len(),
            data.len()
        );
    }
    let flat = rows
        .iter()
        .flat_map(|(_, p)| [p[0] as f32, p[1] as f32])
        .collect();
    Matrix::new(rows.len(), 2, flat)
}

/// Places every point of `record` on `layout` (method `method`) again, from its
/// embedding: how a new layout keeps the points added to the old one.
pub fn replace_on(
    record: &mut AddedRecord,
    data: &PhaseData,
    method: Method,
    layout: &Matrix,
) -> Result<()> {
    if record.points.is_empty() {
        return Ok(());
    }
    let d = data.embeddings.cols;
    if let Some(bad) = record.points.iter().find(|p| p.embedding.len() != d) {
        bail!(
            "{}: {} has a {}-dimensional embedding, the phase's are {d}-dimensional",
            data.dir.projections().join(ADDED_FILE).display(),
            bad.path,
            bad.embedding.len()
        );
    }
    let new = Matrix::new(
        record.points.len(),
        d,
        record
            .points
            .iter()
            .flat_map(|p| p.embedding.clone())
            .collect(),
    )?;
    let space = super::input::for_distance(&data.embeddings, data.distance);
    let new = super::input::for_distance(&new, data.distance);
    let opts = AddOptions {
        k: record.k,
        epochs: record.epochs,
        ..Default::default()
    };
    let (positions, neighbours) = place(&space, layout, &new, data.distance, &opts)?;
    for (i, p) in record.points.iter_mut().enumerate() {
        p.positions.insert(
            method.name().to_string(),
            [positions.row(i)[0], positions.row(i)[1]],
        );
        p.neighbours = neighbours[i].clone();
    }
    Ok(())
}

/// The added points of `record` as the map draws them on `method`'s layout.
pub struct AddedView {
    layout: Matrix,
    classes: Vec<String>,
    paths: Vec<String>,
    near: Vec<Vec<(usize, f32)>>,
}

impl AddedView {
    /// The points of `record` placed on `method`'s layout (those placed on it).
    pub fn new(record: &AddedRecord, method: Method) -> Result<AddedView> {
        let on: Vec<&AddedPoint> = record
            .points
            .iter()
            .filter(|p| p.positions.contains_key(method.name()))
            .collect();
        Ok(AddedView {
            layout: Matrix::new(
                on.len(),
                2,
                on.iter().flat_map(|p| p.positions[method.name()]).collect(),
            )?,
            classes: on.iter().map(|p| p.class.clone()).collect(),
            paths: on.iter().map(|p| p.path.clone()).collect(),
            near: on.iter().map(|p| p.neighbours.clone()).collect(),
        })
    }

    /// What the map page takes; `None` when nothing was added.
    pub fn points<'a>(&'a self, sprite: Option<&'a SpriteInfo>) -> Option<map::AddedPoints<'a>> {
        (self.layout.rows > 0).then_some(map::AddedPoints {
            layout: &self.layout,
            classes: &self.classes,
            paths: &self.paths,
            near: &self.near,
            sprite,
        })
    }
}

/// Embeds the images under `dir` (classes from folder names, [`list_images`]) with the
/// phase's model, places them on every stored layout of the phase, records them in
/// `added.json` and writes the maps again with them drawn. Images already added are
/// skipped. Embedding before the lock, placing under it ([`place_embedded`]).
pub fn add_images(run: &RunDir, phase: Phase, dir: &Path, opts: &AddOptions) -> Result<AddSummary> {
    if !crate::run::is_run_dir(&run.root) {
        bail!(
            "{}: not a run directory (no config.toml)",
            run.root.display()
        );
    }
    let images = list_images(dir)?;
    let pm = PhaseModel::load_on(run, phase, opts.device)?;
    let paths: Vec<PathBuf> = images.iter().map(|(p, _)| p.clone()).collect();
    let embedded = embed_readable_files(
        &pm.model.net,
        &paths,
        pm.exp.test_transform(),
        pm.exp.device,
    )?;
    all_readable(&embedded, "added")?;
    let rows = embedding_rows(&embedded.embeddings)?;
    let lock = RunLock::acquire(&run.root, "project --add")?;
    match place_embedded(run, phase, &lock, &images, rows, pm.exp.device, opts)? {
        Some(summary) => Ok(summary),
        None => bail!(
            "{}: no stored layout (umap.csv, tsne.csv): run `dmlviz project --run {}` first",
            run.phase(phase).projections().display(),
            run.root.display()
        ),
    }
}

/// What `dmlviz index add` did: the enrolment, and the placement on the phase's maps
/// when it has any.
#[derive(Debug, Clone, Serialize)]
pub struct EnrolAndPlace {
    /// The gallery's side.
    #[serde(flatten)]
    pub enrolment: Enrolment,
    /// The maps' side; `None` when the phase has no stored layout.
    pub placed: Option<AddSummary>,
}

/// `dmlviz index add`: embeds `images` of class `class` on `device`, enrols them into
/// the phase's gallery (`gallery`: another store, such as a PostgreSQL table; `None`:
/// the run's own gallery file) and, when the phase has stored layouts, places them on
/// its maps as `project --add` does. One acquisition of the run's writer lock covers
/// both writes, so no other writer comes between the gallery and the maps.
pub fn enrol_and_place(
    run: &RunDir,
    pm: &PhaseModel,
    gallery: Option<&mut dyn GalleryStore>,
    class: &str,
    images: &[PathBuf],
    opts: &AddOptions,
) -> Result<EnrolAndPlace> {
    check_request(class, images)?;
    let embedded = embed_readable_files(
        &pm.model.net,
        images,
        pm.exp.test_transform(),
        pm.exp.device,
    )?;
    all_readable(&embedded, "enrolled")?;
    check_request(class, &embedded.paths)?;
    let has_maps = !stored_methods(&run.phase(pm.phase).projections()).is_empty();
    let rows = if has_maps {
        embedding_rows(&embedded.embeddings)?
    } else {
        Vec::new()
    };
    let labelled: Vec<(PathBuf, String)> = embedded
        .paths
        .iter()
        .map(|p| (p.clone(), class.to_string()))
        .collect();
    let (enrolment, lock) = match gallery {
        None => {
            let mut store = RunGallery::open(pm, run)?;
            let lock = acquire_patiently(run, "index add", LOCK_PATIENCE)?;
            let done = store.enrol_under(&lock, class, embedded.paths, &embedded.embeddings)?;
            (done, Some(lock))
        }
        // A store of its own (one database transaction): the run's lock only for the maps.
        Some(store) => {
            let done = store.enrol(class, embedded.paths, &embedded.embeddings)?;
            let lock = has_maps
                .then(|| acquire_patiently(run, "index add", LOCK_PATIENCE))
                .transpose()?;
            (done, lock)
        }
    };
    let placed = match (has_maps, lock) {
        (true, Some(lock)) => {
            place_embedded(run, pm.phase, &lock, &labelled, rows, pm.exp.device, opts)
                .with_context(|| {
                    format!(
                        "the {} images are enrolled in the gallery, but placing them on the \
                         maps failed (`dmlviz project --add` can place them later)",
                        enrolment.added
                    )
                })?
        }
        _ => None,
    };
    Ok(EnrolAndPlace { enrolment, placed })
}

fn embedding_rows(embeddings: &tch::Tensor) -> Result<Vec<Vec<f32>>> {
    Vec::<Vec<f32>>::try_from(
        &embeddings
            .to_kind(tch::Kind::Float)
            .to_device(tch::Device::Cpu),
    )
    .context("reading the new embeddings")
}

/// The methods with a stored layout (`<method>.csv`) in `projections`.
fn stored_methods(projections: &Path) -> Vec<Method> {
    [Method::Umap, Method::Tsne]
        .into_iter()
        .filter(|m| projections.join(file_name(m.name(), "csv")).is_file())
        .collect()
}

/// Places embedded images (`images` with their classes, `rows` their embeddings) on
/// every stored layout of the phase, under the caller's writer lock `_lock`; `None`
/// when the phase has no stored layout. Images already added are skipped.
pub fn place_embedded(
    run: &RunDir,
    phase: Phase,
    _lock: &RunLock,
    images: &[(PathBuf, String)],
    rows: Vec<Vec<f32>>,
    device: tch::Device,
    opts: &AddOptions,
) -> Result<Option<AddSummary>> {
    let data = load_phase(run, phase)?;
    let out = data.dir.projections();
    let methods = stored_methods(&out);
    if methods.is_empty() {
        return Ok(None);
    }
    let record_path = out.join(ADDED_FILE);
    let mut record = read_record::<AddedRecord>(&record_path)?.unwrap_or(AddedRecord {
        schema_version: SCHEMA_VERSION,
        k: opts.k,
        epochs: opts.epochs,
        points: Vec::new(),
    });
    let before = record.points.len();
    for ((path, class), embedding) in images.iter().zip(rows) {
        let path = path.display().to_string();
        if record.points.iter().any(|p| p.path == path) {
            continue;
        }
        if embedding.len() != data.embeddings.cols {
            bail!(
                "{path}: a {}-dimensional embedding, the phase's are {}",
                embedding.len(),
                data.embeddings.cols
            );
        }
        record.points.push(AddedPoint {
            path,
            class: class.clone(),
            embedding,
            positions: Default::default(),
            neighbours: Vec::new(),
        });
    }
    let layouts: Vec<(Method, Matrix)> = methods
        .iter()
        .map(|&m| stored_layout(&data, m).map(|l| (m, l)))
        .collect::<Result<_>>()?;
    for (m, layout) in &layouts {
        replace_on(&mut record, &data, *m, layout)?;
    }
    write_pages(&data, phase, &record, &layouts, device)?;
    write_json(&record_path, &record)?;
    Ok(Some(AddSummary {
        added: record.points.len() - before,
        total: record.points.len(),
        methods: methods.iter().map(|m| m.name().to_string()).collect(),
        projections_dir: out,
    }))
}

/// Writes the added points' sprite sheets and every layout's map page with them.
fn write_pages(
    data: &PhaseData,
    phase: Phase,
    record: &AddedRecord,
    layouts: &[(Method, Matrix)],
    device: tch::Device,
) -> Result<()> {
    let out = data.dir.projections();
    let added_paths: Vec<PathBuf> = record
        .points
        .iter()
        .map(|p| PathBuf::from(&p.path))
        .collect();
    let (thumbs, _) = load_thumbnails(&added_paths, 64);
    let added_sprite = write_sprites(&out, ADDED_SPRITE_STEM, &thumbs)?;
    let sprite = read_record::<SpriteInfo>(&out.join(file_name(SPRITE_STEM, "json")))
        .ok()
        .flatten();
    let neighbours = hover_neighbours(data, device)?;
    let mut in_gallery = vec![false; data.len()];
    if let Some(g) = read_record::<Galleries>(&data.dir.galleries())? {
        for i in g
            .items
            .iter()
            .filter_map(|it| it.id.get(1..)?.parse::<usize>().ok())
        {
            if i < in_gallery.len() {
                in_gallery[i] = true;
            }
        }
    }
    let maps: Vec<Method> = layouts.iter().map(|(m, _)| *m).collect();
    let Some(sprite) = sprite else {
        bail!(
            "{}: no sprite.json: run `dmlviz project` again first",
            out.display()
        );
    };
    let pages = MapPages {
        data,
        phase,
        out: &out,
        maps: &maps,
        neighbours: &neighbours,
        in_gallery: &in_gallery,
        thumbs: &[],
        sprite: &sprite,
        thumbnails: false,
    };
    for (method, layout) in layouts {
        let Some(projection) =
            read_record::<ProjectionRecord>(&data.dir.projection_record(method.name()))?
        else {
            continue;
        };
        let view = AddedView::new(record, *method)?;
        pages.write_page(
            *method,
            layout,
            &projection,
            view.points(Some(&added_sprite)),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::{clustered_points, normal};

    /// Clustered data, a layout that puts cluster c around (10c, 0), and new points of
    /// cluster 3 drawn from the same distribution: they land among cluster 3.
    #[test]
    fn new_points_land_on_their_cluster() {
        let (all, labels) = clustered_points(620, 16, 4, 0.3, 9);
        let n = 600;
        let stored = Matrix::new(n, 16, all.data[..n * 16].to_vec()).unwrap();
        let new = Matrix::new(20, 16, all.data[n * 16..].to_vec()).unwrap();
        let mut rng = Rng::new(3);
        let layout = Matrix::new(
            n,
            2,
            (0..n)
                .flat_map(|i| {
                    let c = labels[i] as f32;
                    [10.0 * c + normal(&mut rng) as f32, normal(&mut rng) as f32]
                })
                .collect(),
        )
        .unwrap();
        let (placed, near) = place(
            &stored,
            &layout,
            &new,
            Distance::Euclidean,
            &AddOptions::default(),
        )
        .unwrap();
        assert_eq!((placed.rows, near.len(), near[0].len()), (20, 20, 15));
        let centroid = |c: i64| {
            let rows: Vec<usize> = (0..n).filter(|&i| labels[i] == c).collect();
            let m = rows.len() as f32;
            [
                rows.iter().map(|&i| layout.row(i)[0]).sum::<f32>() / m,
                rows.iter().map(|&i| layout.row(i)[1]).sum::<f32>() / m,
            ]
        };
        for (i, label) in labels[n..].iter().enumerate() {
            let p = placed.row(i);
            let d = |c: [f32; 2]| (p[0] - c[0]).hypot(p[1] - c[1]);
            let own = d(centroid(*label));
            for other in (0..4).filter(|c| c != label) {
                assert!(
                    own < d(centroid(other)) / 3.0,
                    "point {i}: {own} vs {}",
                    d(centroid(other))
                );
            }
            assert!(
                near[i].iter().all(|&(j, _)| labels[j] == *label),
                "neighbours of {i}"
            );
            assert!(own < 3.0, "point {i} is {own} from its cluster's centre");
        }
    }

    #[test]
    fn memberships_fall_with_distance_and_sum_to_log2_k() {
        let row: Vec<(usize, f32)> = (0..15).map(|j| (j, 1.0 + 0.1 * j as f32)).collect();
        let w = memberships(&row);
        assert_eq!(w[0], 1.0);
        assert!(w.windows(2).all(|p| p[0] > p[1]));
        let total: f32 = w.iter().sum();
        assert!((total - 15f32.log2()).abs() < 1e-3, "{total}");
    }

    #[test]
    fn folders_give_classes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new-birds");
        std::fs::create_dir_all(root.join("puffin")).unwrap();
        for f in ["puffin/a.png", "puffin/b.jpg", "loose.png", "notes.txt"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let found = list_images(&root).unwrap();
        let classes: Vec<(&str, &str)> = found
            .iter()
            .map(|(p, c)| (p.file_name().unwrap().to_str().unwrap(), c.as_str()))
            .collect();
        assert_eq!(
            classes,
            vec![
                ("loose.png", "new-birds"),
                ("a.png", "puffin"),
                ("b.jpg", "puffin")
            ]
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(list_images(&empty)
            .unwrap_err()
            .to_string()
            .contains("no .png"));
    }
}
