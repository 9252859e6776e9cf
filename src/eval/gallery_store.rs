//! Where `predict` looks up neighbours and `index add` stores enrolments: the run's
//! gallery file (the default, [`RunGallery`]) or a PostgreSQL table with pgvector
//! (`crate::pg_gallery`). Both answer the same two questions, so the majority vote and
//! the enrolment rules (all of a class's images or none) are written once, in
//! `predict` and `enrol`, above this trait.

use super::enrol::{acquire_patiently, Enrolment, LOCK_PATIENCE};
use super::gallery::Gallery;
use super::phase_model::PhaseModel;
use super::predict::Neighbour;
use crate::run::lock::RunLock;
use crate::run::{RunDir, GALLERY_FILE};
use crate::search::knn::k_nearest;
use crate::search::Distance;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::SystemTime;
use tch::{Kind, Tensor};

/// One class of a gallery and how many images it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassCount {
    pub class: String,
    pub images: usize,
}

/// The store cannot be reached right now (a database that is down): the request may
/// succeed later, so the service answers 503 instead of 500.
#[derive(Debug, thiserror::Error)]
#[error("the gallery is unavailable: {0}")]
pub struct StoreUnavailable(pub String);

/// A searchable, growable reference gallery.
pub trait GalleryStore: Send {
    /// Names the store in messages: the file, or the database table.
    fn describe(&self) -> String;
    /// The `k` nearest rows of each query row, nearest first (fewer when the gallery is
    /// smaller; empty rows when it is empty).
    fn nearest(&mut self, queries: &Tensor, k: usize) -> Result<Vec<Vec<Neighbour>>>;
    /// Adds the rows of one class (created when new): all of them or none.
    fn enrol(&mut self, class: &str, paths: Vec<PathBuf>, embeddings: &Tensor)
        -> Result<Enrolment>;
    /// Every class with its number of images, by name.
    fn classes(&mut self) -> Result<Vec<ClassCount>>;
}

/// The phase's own gallery file, held in memory and read again when another process
/// has replaced it (a concurrent `index add`).
pub struct RunGallery {
    run: RunDir,
    dir: PathBuf,
    distance: Distance,
    gallery: Gallery,
    /// Modification time and length of the file when it was read.
    seen: Option<(SystemTime, u64)>,
}

impl RunGallery {
    /// The phase's gallery (built from its training images and stored when absent).
    pub fn open(pm: &PhaseModel, run: &RunDir) -> Result<RunGallery> {
        let gallery = pm.gallery(run)?;
        let dir = pm.dir(run);
        let mut store = RunGallery {
            run: run.clone(),
            seen: None,
            distance: pm.exp.cfg.model.distance,
            dir,
            gallery,
        };
        store.seen = store.stamp();
        Ok(store)
    }

    /// [`GalleryStore::enrol`] with the run's writer lock already held by the caller
    /// (`index add` placing the images on the maps too, under the same lock).
    pub fn enrol_under(
        &mut self,
        lock: &RunLock,
        class: &str,
        paths: Vec<PathBuf>,
        embeddings: &Tensor,
    ) -> Result<Enrolment> {
        // Read under the lock: what another enrolment stored a moment ago is kept.
        let mut gallery = Gallery::load(&self.dir)?;
        let added = gallery.add(class, paths, embeddings)?;
        gallery.replace(&self.dir, lock)?;
        self.gallery = gallery;
        self.seen = self.stamp();
        Ok(Enrolment {
            class: class.to_string(),
            added,
            gallery_size: self.gallery.manifest.entries.len(),
            classes: self.gallery.manifest.classes.len(),
        })
    }

    /// The gallery as last read.
    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(self.dir.join(GALLERY_FILE)).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// Reads the file again when it changed since it was read.
    fn refresh(&mut self) -> Result<()> {
        let now = self.stamp();
        if now.is_some() && now != self.seen {
            self.gallery = Gallery::load(&self.dir)?;
            self.seen = now;
        }
        Ok(())
    }
}

impl GalleryStore for RunGallery {
    fn describe(&self) -> String {
        self.dir.join(GALLERY_FILE).display().to_string()
    }

    fn nearest(&mut self, queries: &Tensor, k: usize) -> Result<Vec<Vec<Neighbour>>> {
        self.refresh()?;
        gallery_neighbours(&self.gallery, queries, k, self.distance)
    }

    fn enrol(
        &mut self,
        class: &str,
        paths: Vec<PathBuf>,
        embeddings: &Tensor,
    ) -> Result<Enrolment> {
        let lock = acquire_patiently(&self.run, "index add", LOCK_PATIENCE)?;
        self.enrol_under(&lock, class, paths, embeddings)
    }

    fn classes(&mut self) -> Result<Vec<ClassCount>> {
        self.refresh()?;
        let m = &self.gallery.manifest;
        let mut counts = vec![0usize; m.classes.len()];
        for e in &m.entries {
            counts[e.label] += 1;
        }
        let mut out: Vec<ClassCount> = m
            .classes
            .iter()
            .zip(counts)
            .map(|(c, images)| ClassCount {
                class: c.clone(),
                images,
            })
            .collect();
        out.sort_by(|a, b| a.class.cmp(&b.class));
        Ok(out)
    }
}

/// Exact k-nearest neighbours of each query row in an in-memory gallery.
pub fn gallery_neighbours(
    gallery: &Gallery,
    queries: &Tensor,
    k: usize,
    distance: Distance,
) -> Result<Vec<Vec<Neighbour>>> {
    let m = &gallery.manifest;
    let rows = queries.size()[0] as usize;
    let k = k.min(m.entries.len());
    if k == 0 {
        return Ok(vec![Vec::new(); rows]);
    }
    let (idx, dist) = k_nearest(queries, &gallery.embeddings, k as i64, distance);
    let idx: Vec<Vec<i64>> = Vec::try_from(&idx).context("reading neighbour indices")?;
    let dist: Vec<Vec<f32>> =
        Vec::try_from(&dist.to_kind(Kind::Float)).context("reading neighbour distances")?;
    idx.iter()
        .zip(&dist)
        .map(|(row, drow)| {
            row.iter()
                .zip(drow)
                .map(|(&j, &d)| {
                    let e = m
                        .entries
                        .get(j as usize)
                        .with_context(|| format!("neighbour index {j} outside the gallery"))?;
                    Ok(Neighbour {
                        class: m.classes[e.label].clone(),
                        distance: d as f64,
                        path: e.path.clone(),
                    })
                })
                .collect()
        })
        .collect()
}
