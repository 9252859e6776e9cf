//! One commit point per epoch: the files of an epoch (checkpoint, optimiser state,
//! history, train-state) become visible together or not at all.
//!
//! ```text
//! DIR/.staged/commit-S/NAME...  1. the files of commit S, each written atomically
//!                                  (not trusted yet)
//! DIR/commit.json              2. the manifest, written last and atomically: the commit
//!                                 point. It names commit S's files, sizes and CRC-32s.
//! DIR/NAME...                  3. the staged files renamed into place (published)
//! ```
//!
//! A kill before step 2 leaves staged files that no manifest vouches for: they are
//! removed at the next start. A kill during step 3 leaves a manifest whose staged
//! files are still waiting: the next start finishes the renames. Readers go through
//! [`committed_path`], which sees a committed staged file before it is published, so
//! they never mix two epochs. A file the manifest vouches for that is missing or
//! differs was changed outside dmlviz: the writer refuses to continue.

use crate::atomic::{rename, write_json};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Name of the manifest in a directory of committed epochs.
pub const MANIFEST: &str = "commit.json";

/// Folder of the files written for commits not yet published.
pub const STAGING: &str = ".staged";

/// The manifest: what the last committed epoch consists of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Sequence number of the commit (its files are staged in `.staged/commit-S/`).
    pub commit: u64,
    /// Epochs completed by the committed files.
    pub epoch: usize,
    /// Every file of the commit.
    pub files: Vec<VouchedFile>,
}

/// A file a manifest vouches for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VouchedFile {
    /// File name inside the directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE) of the content.
    pub crc32: u32,
}

impl VouchedFile {
    /// What a manifest says about the file at `path` as it is now.
    fn of(name: &str, path: &Path) -> Result<VouchedFile> {
        let (bytes, crc32) = size_and_crc(path)?;
        Ok(VouchedFile {
            name: name.to_string(),
            bytes,
            crc32,
        })
    }

    /// True when the file at `path` is the one vouched for (false when missing).
    fn matches(&self, path: &Path) -> Result<bool> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() != self.bytes => Ok(false),
            Ok(_) => Ok(size_and_crc(path)? == (self.bytes, self.crc32)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

fn size_and_crc(path: &Path) -> Result<(u64, u32)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut crc = flate2::Crc::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok((bytes, crc.sum()));
        }
        crc.update(&buffer[..n]);
        bytes += n as u64;
    }
}

/// Staging folder of commit `commit` of `dir`.
fn staging_of(dir: &Path, commit: u64) -> PathBuf {
    dir.join(STAGING).join(format!("commit-{commit}"))
}

/// Reads the manifest of `dir`, if it has one; errors name the file.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let manifest =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(manifest))
}

/// Where readers find the committed file `name` of `dir`: its staged copy while a
/// commit is being published, otherwise `dir/name` (also for directories without
/// a manifest, the layout before commits existed).
pub fn committed_path(dir: &Path, name: &str) -> PathBuf {
    // An unreadable manifest is reported by the writer; readers fall back to the plain name.
    if let Ok(Some(manifest)) = read_manifest(dir) {
        let staged = staging_of(dir, manifest.commit).join(name);
        let vouched = manifest.files.iter().find(|f| f.name == name);
        let size = std::fs::metadata(&staged).map(|m| m.len()).ok();
        if vouched.is_some_and(|f| Some(f.bytes) == size) {
            return staged;
        }
    }
    dir.join(name)
}

/// Brings `dir` to its last commit, for a writer holding the run's lock: finishes the
/// publication a kill interrupted, removes staged files no commit vouches for, and
/// checks every vouched file. Returns the manifest (`None` when there is none).
pub fn recover(dir: &Path) -> Result<Option<Manifest>> {
    let manifest = read_manifest(dir)?;
    if let Some(m) = &manifest {
        for file in &m.files {
            let staged = staging_of(dir, m.commit).join(&file.name);
            let published = dir.join(&file.name);
            if file.matches(&staged)? {
                rename(&staged, &published)?;
            } else if !file.matches(&published)? {
                bail!(
                    "{} is missing or differs from what {} (epoch {}) vouches for: the run \
                     directory was changed outside dmlviz; start the run again with another --out",
                    published.display(),
                    dir.join(MANIFEST).display(),
                    m.epoch
                );
            }
        }
    }
    // What is left was staged for a commit that never happened.
    let staging = dir.join(STAGING);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing uncommitted files {}", staging.display()))?;
    }
    Ok(manifest)
}

/// Commits the files `names` already in `dir` as epoch `epoch`, as they are: for a
/// directory written before commits existed, once its files have been checked.
pub fn adopt(dir: &Path, epoch: usize, names: &[&str]) -> Result<Manifest> {
    let files = names
        .iter()
        .map(|name| VouchedFile::of(name, &dir.join(name)))
        .collect::<Result<Vec<_>>>()?;
    let manifest = Manifest {
        commit: 0,
        epoch,
        files,
    };
    write_json(&dir.join(MANIFEST), &manifest)?;
    Ok(manifest)
}

/// The files of one commit being written.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    /// The commit before this one, when there is one.
    previous: Option<Manifest>,
    names: Vec<String>,
}

impl Staging {
    /// Starts a commit in `dir` (after [`recover`]).
    pub fn begin(dir: &Path) -> Result<Staging> {
        let previous = read_manifest(dir)?;
        let staging = Staging {
            dir: dir.to_path_buf(),
            previous,
            names: Vec::new(),
        };
        let folder = staging.folder();
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating directory {}", folder.display()))?;
        Ok(staging)
    }

    /// Sequence number of this commit.
    fn commit_number(&self) -> u64 {
        self.previous.as_ref().map_or(1, |m| m.commit + 1)
    }

    fn folder(&self) -> PathBuf {
        staging_of(&self.dir, self.commit_number())
    }

    /// Where to write the commit's file `name` (atomically, as every file is written).
    pub fn path(&mut self, name: &str) -> PathBuf {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
        }
        self.folder().join(name)
    }

    /// Commits the staged files as epoch `epoch`, together with the files of the
    /// previous commit that were not staged again (they stay as they are), then
    /// publishes them under their own names.
    pub fn commit(self, epoch: usize) -> Result<Manifest> {
        let folder = self.folder();
        let mut files = self
            .names
            .iter()
            .map(|name| VouchedFile::of(name, &folder.join(name)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(previous) = &self.previous {
            let kept = previous
                .files
                .iter()
                .filter(|f| !self.names.contains(&f.name));
            files.extend(kept.cloned());
        }
        let manifest = Manifest {
            commit: self.commit_number(),
            epoch,
            files,
        };
        write_json(&self.dir.join(MANIFEST), &manifest)?;
        for name in &self.names {
            rename(&folder.join(name), &self.dir.join(name))?;
        }
        // Empty now; a later commit stages into a folder of its own.
        let _ = std::fs::remove_dir(&folder);
        let _ = std::fs::remove_dir(self.dir.join(STAGING));
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::write_atomic;

    fn stage(staging: &mut Staging, name: &str, content: &str) {
        write_atomic(&staging.path(name), content.as_bytes()).unwrap();
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(committed_path(dir, name)).unwrap()
    }

    #[test]
    fn staged_files_are_invisible_until_committed_and_removed_when_never_committed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut s = Staging::begin(d).unwrap();
        stage(&mut s, "a", "a1");
        stage(&mut s, "b", "b1");
        s.commit(1).unwrap();
        assert_eq!((read(d, "a"), read(d, "b")), ("a1".into(), "b1".into()));
        assert!(!d.join(STAGING).exists());

        // Epoch 2 staged (same size as epoch 1's), then a kill before the manifest:
        // readers still see epoch 1.
        let mut s = Staging::begin(d).unwrap();
        stage(&mut s, "a", "a2");
        drop(s);
        assert_eq!(read(d, "a"), "a1");
        let m = recover(d).unwrap().unwrap();
        assert_eq!(m.epoch, 1);
        assert!(!d.join(STAGING).exists(), "uncommitted file kept");
        assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "a1");
    }

    #[test]
    fn a_commit_interrupted_while_publishing_is_seen_whole_and_finished_by_recover() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut s = Staging::begin(d).unwrap();
        stage(&mut s, "a", "a1");
        stage(&mut s, "b", "b1");
        s.commit(1).unwrap();
        // Epoch 2 committed, but only "a" was published before the kill.
        let staging = staging_of(d, 2);
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("b"), "b2").unwrap();
        std::fs::write(d.join("a"), "a2").unwrap();
        let manifest = Manifest {
            commit: 2,
            epoch: 2,
            files: vec![
                VouchedFile::of("a", &d.join("a")).unwrap(),
                VouchedFile::of("b", &staging.join("b")).unwrap(),
            ],
        };
        write_json(&d.join(MANIFEST), &manifest).unwrap();
        assert_eq!((read(d, "a"), read(d, "b")), ("a2".into(), "b2".into()));
        assert_eq!(recover(d).unwrap().unwrap().epoch, 2);
        assert_eq!(std::fs::read_to_string(d.join("b")).unwrap(), "b2");
        assert!(!d.join(STAGING).exists());
    }

    #[test]
    fn files_not_staged_again_stay_vouched_and_tampering_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut s = Staging::begin(d).unwrap();
        stage(&mut s, "weights", "w1");
        stage(&mut s, "state", "running");
        s.commit(1).unwrap();
        let mut s = Staging::begin(d).unwrap();
        stage(&mut s, "state", "stopped");
        let m = s.commit(1).unwrap();
        let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["state", "weights"]);
        assert!(recover(d).is_ok());

        std::fs::write(d.join("weights"), "w9").unwrap();
        let err = recover(d).unwrap_err().to_string();
        assert!(err.contains("weights") && err.contains(MANIFEST), "{err}");
    }

    #[test]
    fn adopting_an_older_directory_vouches_for_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("history"), "h").unwrap();
        let m = adopt(d, 3, &["history"]).unwrap();
        assert_eq!(m.files[0].bytes, 1);
        // CRC-32 (IEEE) of "h", as zlib computes it.
        assert_eq!(m.files[0].crc32, 0x916B_06E7);
        assert_eq!(read_manifest(d).unwrap(), Some(m));
    }
}
