//! Incremental output for the site: files are written only when their bytes change
//! and copied only when their size or modification time changed, so rebuilding the
//! site after one new run touches that run's files and the index, nothing else.

use crate::atomic::write_atomic;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What an incremental operation did, for the command's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Files written or copied.
    pub written: usize,
    /// Files left as they were.
    pub unchanged: usize,
    /// Bytes written or copied.
    pub bytes: u64,
}

impl WriteStats {
    /// Adds another operation's counts.
    pub fn add(&mut self, other: WriteStats) {
        self.written += other.written;
        self.unchanged += other.unchanged;
        self.bytes += other.bytes;
    }
}

/// Writes `bytes` atomically unless `path` already holds exactly them.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<WriteStats> {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.len() == bytes.len() as u64 && std::fs::read(path).is_ok_and(|old| old == bytes) {
            return Ok(WriteStats {
                written: 0,
                unchanged: 1,
                bytes: 0,
            });
        }
    }
    write_atomic(path, bytes)?;
    Ok(WriteStats {
        written: 1,
        unchanged: 0,
        bytes: bytes.len() as u64,
    })
}

fn modified(meta: &std::fs::Metadata) -> Option<SystemTime> {
    meta.modified().ok()
}

/// Copies `from` to `to` (atomically) unless `to` has the same size and modification
/// time; the copy gets the source's modification time, so the next run skips it.
pub fn copy_if_changed(from: &Path, to: &Path) -> Result<WriteStats> {
    let source = std::fs::metadata(from).with_context(|| format!("reading {}", from.display()))?;
    if let Ok(target) = std::fs::metadata(to) {
        if target.len() == source.len()
            && modified(&target).is_some()
            && modified(&target) == modified(&source)
        {
            return Ok(WriteStats {
                written: 0,
                unchanged: 1,
                bytes: 0,
            });
        }
    }
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_atomic(to, &bytes)?;
    if let Some(time) = modified(&source) {
        let file = std::fs::File::options()
            .write(true)
            .open(to)
            .with_context(|| format!("opening {}", to.display()))?;
        file.set_modified(time)
            .with_context(|| format!("setting the modification time of {}", to.display()))?;
    }
    Ok(WriteStats {
        written: 1,
        unchanged: 0,
        bytes: bytes.len() as u64,
    })
}

/// Largest file copied into the site; bigger ones are left out (and reported).
pub const MAX_COPIED_FILE: u64 = 16 << 20;

/// Extensions of files never copied into the site: tensors kept for other tools, not
/// shown by any page.
pub const SKIPPED_EXTENSIONS: [&str; 2] = ["safetensors", "bin"];

/// Copies a directory tree incrementally, leaving out sub-directories named in
/// `skip_dirs`, hidden files, tensors ([`SKIPPED_EXTENSIONS`]) and files over
/// [`MAX_COPIED_FILE`] (the last two returned in `left_out`). Files in `to` that no
/// longer exist in `from` are removed.
pub fn copy_tree(
    from: &Path,
    to: &Path,
    skip_dirs: &[&str],
    left_out: &mut Vec<PathBuf>,
) -> Result<WriteStats> {
    let mut stats = WriteStats::default();
    let mut kept = std::collections::BTreeSet::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)
        .with_context(|| format!("listing {}", from.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if skip_dirs.contains(&name.as_str()) {
                left_out.push(path);
                continue;
            }
            stats.add(copy_tree(&path, &to.join(&name), skip_dirs, left_out)?);
            kept.insert(name);
        } else if path.is_file() {
            let tensor = path.extension().is_some_and(|e| {
                SKIPPED_EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str())
            });
            if tensor || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) > MAX_COPIED_FILE {
                left_out.push(path);
                continue;
            }
            stats.add(copy_if_changed(&path, &to.join(&name))?);
            kept.insert(name);
        }
    }
    // Files of an earlier copy whose source is gone.
    if let Ok(existing) = std::fs::read_dir(to) {
        for entry in existing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !kept.contains(&name) && !name.starts_with('.') && entry.path().is_file() {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("removing stale {}", entry.path().display()))?;
            }
        }
    }
    Ok(stats)
}

/// The path of `target` relative to the directory `from` (both absolute or both
/// relative to the same directory), with `/` separators, for links between pages.
pub fn relative_path(from_dir: &Path, target: &Path) -> String {
    use std::path::Component;
    let a: Vec<Component> = from_dir
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    let b: Vec<Component> = target
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); a.len() - common];
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// A fingerprint of input files (path, size, modification time), to skip rebuilding
/// a page whose inputs did not change. Directories are walked recursively.
pub fn fingerprint(paths: &[PathBuf]) -> String {
    let mut lines = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            lines.push(format!("{} absent", path.display()));
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
            continue;
        }
        let time = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        lines.push(format!("{} {} {}", path.display(), meta.len(), time));
    }
    lines.sort();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/page.html");
        assert_eq!(write_if_changed(&path, b"x").unwrap().written, 1);
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(write_if_changed(&path, b"x").unwrap().unchanged, 1);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        assert_eq!(write_if_changed(&path, b"y").unwrap().written, 1);
    }

    #[test]
    fn trees_copy_incrementally_and_drop_stale_files() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(src.join("tensorboard")).unwrap();
        std::fs::write(src.join("a.png"), b"png").unwrap();
        std::fs::write(src.join("sub/b.jpg"), b"jpg").unwrap();
        let mut left = Vec::new();
        let first = copy_tree(&src, &dst, &["tensorboard"], &mut left).unwrap();
        assert_eq!(first.written, 2);
        assert_eq!(left, vec![src.join("tensorboard")]);
        let second = copy_tree(&src, &dst, &["tensorboard"], &mut left).unwrap();
        assert_eq!((second.written, second.unchanged), (0, 2));
        std::fs::remove_file(src.join("a.png")).unwrap();
        copy_tree(&src, &dst, &["tensorboard"], &mut left).unwrap();
        assert!(!dst.join("a.png").exists() && dst.join("sub/b.jpg").exists());
    }

    #[test]
    fn relative_paths_between_directories() {
        assert_eq!(
            relative_path(Path::new("runs/x/report"), Path::new("runs/x/phase-all")),
            "../phase-all"
        );
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/b/c.html")),
            "c.html"
        );
        assert_eq!(relative_path(Path::new("./a"), Path::new("a")), ".");
    }

    #[test]
    fn fingerprints_change_with_the_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"1").unwrap();
        let a = fingerprint(&[dir.path().to_path_buf()]);
        std::fs::write(dir.path().join("f"), b"22").unwrap();
        assert_ne!(a, fingerprint(&[dir.path().to_path_buf()]));
    }
}
