//! `dmlviz index add`'s gallery side: checking a request, and enrolling embedded images
//! of a (new) class into a phase's gallery, all or nothing, under the run's writer lock
//! (the command itself, which also places the images on the maps, is
//! `crate::project::add::enrol_and_place`).
//!
//! The slow part (loading the model, decoding and embedding the images) runs before the
//! lock is taken; under it (`RunGallery`'s `enrol`), the gallery is read fresh, extended
//! and replaced in one rename. A PostgreSQL gallery takes the same rows in one
//! transaction instead (`crate::pg_gallery`). Two `index add` at once therefore serialise instead of one overwriting the
//! other's enrolment: the second waits for the first, briefly, or is refused naming it.

use super::gallery_store::GalleryStore;
use super::predict::EmbeddedFiles;
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

/// Stores embedded images of one class, or nothing when any of them did not decode.
pub fn enrol_embedded(
    store: &mut dyn GalleryStore,
    class: &str,
    embedded: EmbeddedFiles,
) -> Result<Enrolment> {
    all_readable(
        &embedded,
        "enrolled (a gallery row from an unreadable file would be noise)",
    )?;
    check_request(class, &embedded.paths)?;
    store.enrol(class, embedded.paths, &embedded.embeddings)
}

/// Refuses a set of images of which any did not decode, naming each (`what`: what
/// would have happened to them).
pub fn all_readable(embedded: &EmbeddedFiles, what: &str) -> Result<()> {
    if embedded.unreadable.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = embedded
        .unreadable
        .iter()
        .map(|u| format!("  {}", u.reason))
        .collect();
    bail!(
        "{} of {} images cannot be read, so none was {what}:\n{}",
        list.len(),
        list.len() + embedded.paths.len(),
        list.join("\n")
    )
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
