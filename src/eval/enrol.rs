//! `dmlviz index add`: enrolling images of a (new) class into a phase's gallery, all or
//! nothing, under the run's writer lock.
//!
//! The slow part (loading the model, decoding and embedding the images) runs before the
//! lock is taken; under it ([`RunGallery`]'s `enrol`), the gallery is read fresh, extended
//! and replaced in one rename. A PostgreSQL gallery takes the same rows in one
//! transaction instead (`crate::pg_gallery`). Two `index add` at once therefore serialise instead of one overwriting the
//! other's enrolment: the second waits for the first, briefly, or is refused naming it.

use super::gallery_store::{GalleryStore, RunGallery};
use super::phase_model::PhaseModel;
use super::predict::{embed_readable_files, EmbeddedFiles};
use crate::config::Phase;
use crate::run::lock::RunLock;
use crate::run::RunDir;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long `index add` waits for another writer of the run to finish before refusing.
pub const LOCK_PATIENCE: Duration = Duration::from_secs(30);
/// Pause between two tries of the lock.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// What one enrolment did.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    pub class: String,
    /// Images added.
    pub added: usize,
    /// Images in the gallery afterwards.
    pub gallery_size: usize,
    /// Classes in the gallery afterwards.
    pub classes: usize,
}

/// Takes the run's writer lock, retrying for up to `patience` while another command holds
/// it; any other failure (an unwritable directory) is returned at once.
pub fn acquire_patiently(run: &RunDir, command: &str, patience: Duration) -> Result<RunLock> {
    let start = Instant::now();
    loop {
        match RunLock::acquire(&run.root, command) {
            Ok(lock) => return Ok(lock),
            // RunLock reports a held lock without an I/O error as its cause.
            Err(e) if e.root_cause().downcast_ref::<std::io::Error>().is_some() => return Err(e),
            Err(e) if start.elapsed() >= patience => {
                return Err(e.context(format!(
                    "gave up waiting {} s for the run's writer lock",
                    patience.as_secs()
                )))
            }
            Err(_) => std::thread::sleep(LOCK_RETRY),
        }
    }
}

/// Enrols `images` as class `class` (created when new) into the gallery file of `phase`.
/// Every image must decode: otherwise nothing is added and the error names every file
/// that does not.
/// Embeds on `device` (`--device`).
pub fn enrol(
    run: &RunDir,
    phase: Phase,
    class: &str,
    images: &[PathBuf],
    device: tch::Device,
) -> Result<Enrolment> {
    check_request(class, images)?;
    let pm = PhaseModel::load_on(run, phase, device)?;
    let mut store = RunGallery::open(&pm, run)?;
    enrol_into(&mut store, &pm, class, images)
}

/// [`enrol`] into any store (the run's file or a PostgreSQL table), with the phase's
/// model already loaded.
pub fn enrol_into(
    store: &mut dyn GalleryStore,
    pm: &PhaseModel,
    class: &str,
    images: &[PathBuf],
) -> Result<Enrolment> {
    check_request(class, images)?;
    let embedded = embed_readable_files(
        &pm.model.net,
        images,
        pm.exp.test_transform(),
        pm.exp.device,
    )?;
    enrol_embedded(store, class, embedded)
}

/// Stores embedded images of one class, or nothing when any of them did not decode.
pub fn enrol_embedded(
    store: &mut dyn GalleryStore,
    class: &str,
    embedded: EmbeddedFiles,
) -> Result<Enrolment> {
    if !embedded.unreadable.is_empty() {
        let list: Vec<String> = embedded
            .unreadable
            .iter()
            .map(|u| format!("  {}", u.reason))
            .collect();
        bail!(
            "{} of {} images cannot be read, so none was enrolled (a gallery row from an \
             unreadable file would be noise):\n{}",
            embedded.unreadable.len(),
            embedded.unreadable.len() + embedded.paths.len(),
            list.join("\n")
        );
    }
    check_request(class, &embedded.paths)?;
    store.enrol(class, embedded.paths, &embedded.embeddings)
}

/// A class name and at least one image.
pub fn check_request(class: &str, images: &[PathBuf]) -> Result<()> {
    if class.trim().is_empty() {
        bail!("the class name must not be empty");
    }
    if images.is_empty() {
        bail!("no image to enrol");
    }
    Ok(())
}
