//! Atomic file output: every file the project writes goes through here, so a
//! crash or Ctrl-C never leaves a half-written file in place of a good one.
//!
//! A file is written to a uniquely named temporary sibling (the `tempfile` crate, so
//! two threads or processes never share one) whose name starts with [`TEMP_PREFIX`],
//! then renamed over its destination. A killed writer can leave such a temporary
//! file behind; [`remove_stale_temp_files`] clears them at the next writer's start.
//!
//! Fault injection for tests: with `DMLVIZ_FAULT_ABORT_AFTER_WRITES=N` in the
//! environment, the process aborts (as a SIGKILL would stop it) right after its N-th
//! rename, counted per process; every rename is then logged to stderr as
//! `dmlviz fault hook: rename N PATH`, so a test can list a run's writes.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Start of the name of every temporary file this module creates.
pub const TEMP_PREFIX: &str = ".dmlviz-tmp-";

/// Environment variable of the fault-injection hook (see the module's comment).
pub const FAULT_ENV: &str = "DMLVIZ_FAULT_ABORT_AFTER_WRITES";

/// Writes `bytes` to `path` through a temporary file and a rename.
/// Parent directories are created as needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes).map_err(Into::into))
}

/// Like [`write_atomic`], for writers that stream into a file (image encoders, CSV).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<()> {
    let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating directory {}", parent.display()))?;
            parent
        }
        None => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = new_temp_file(parent, &name)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    let (file, tmp_path) = tmp.into_parts();
    // The temporary file is deleted when `tmp_path` drops without being persisted.
    let result = (|| -> Result<()> {
        let mut writer = std::io::BufWriter::new(file);
        fill(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        return Err(e.context(format!("writing {}", path.display())));
    }
    let shown = tmp_path.display().to_string();
    tmp_path
        .persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming {shown} to {}", path.display()))?;
    fault_point(path);
    Ok(())
}

/// A new temporary file in `dir` for the destination file `name`, readable as
/// ordinary output is (tempfile's default is owner-only).
fn new_temp_file(dir: &Path, name: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let prefix = format!("{TEMP_PREFIX}{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Renames `from` to `to` (atomic on one file system); a counted write for the fault hook.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    fault_point(to);
    Ok(())
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Encodes an image as PNG, atomically, at the strongest deflate level with adaptive
/// filters: `image`'s default is its fast level, whose map plots were 1.55× as large
/// (they are a share of the report site's size).
pub fn write_png(path: &Path, image: &image::DynamicImage) -> Result<()> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    write_atomic_with(path, |w| {
        image
            .write_with_encoder(PngEncoder::new_with_quality(
                w,
                CompressionType::Best,
                FilterType::Adaptive,
            ))
            .with_context(|| format!("encoding PNG {}", path.display()))
    })
}

/// Deletes the files directly in `dir` whose name `stale` accepts: outputs an earlier
/// run of a command left that this run did not write again. A missing `dir` has none.
pub fn remove_files_where(dir: &Path, stale: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && stale(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing stale {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Deletes the temporary files (names starting with [`TEMP_PREFIX`]) that killed
/// writers left anywhere under `root`, and returns how many. Only for a writer that
/// holds the run directory's lock: another writer's live temporary files would go too.
pub fn remove_stale_temp_files(root: &Path) -> Result<usize> {
    let mut removed = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() && is_temp_name(entry.file_name().as_encoded_bytes()) {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing stale temporary file {}", path.display()))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// True for the names of our temporary files: [`TEMP_PREFIX`]`NAME.RANDOM`, and the
/// `.NAME.tmp.PID` of versions before it (which a kill could leave in older runs).
fn is_temp_name(name: &[u8]) -> bool {
    if name.starts_with(TEMP_PREFIX.as_bytes()) {
        return true;
    }
    let Some(text) = std::str::from_utf8(name)
        .ok()
        .filter(|t| t.starts_with('.'))
    else {
        return false;
    };
    text.rsplit_once(".tmp.").is_some_and(|(stem, pid)| {
        stem.len() > 1 && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Counts a completed rename and aborts the process when the fault hook asks for it.
fn fault_point(path: &Path) {
    static ABORT_AFTER: OnceLock<Option<usize>> = OnceLock::new();
    static RENAMES: AtomicUsize = AtomicUsize::new(0);
    let Some(limit) = *ABORT_AFTER.get_or_init(|| std::env::var(FAULT_ENV).ok()?.parse().ok())
    else {
        return;
    };
    let n = RENAMES.fetch_add(1, Ordering::SeqCst) + 1;
    eprintln!("dmlviz fault hook: rename {n} {}", path.display());
    if n == limit {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heat-map-like image (smooth colour ramps, as the explanations' maps are): the
    /// PNG decodes to the same pixels and is smaller than `image`'s default encoding.
    #[test]
    fn png_is_lossless_and_smaller_than_the_default_encoding() {
        let img = image::RgbImage::from_fn(224, 224, |x, y| {
            let v = ((x as f32 / 20.0).sin() * (y as f32 / 31.0).cos() * 127.0 + 128.0) as u8;
            image::Rgb([v, 255 - v, (x + y) as u8 / 2])
        });
        let img = image::DynamicImage::ImageRgb8(img);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heat.png");
        write_png(&path, &img).unwrap();
        let ours = std::fs::metadata(&path).unwrap().len();
        let mut default = std::io::Cursor::new(Vec::new());
        img.write_to(&mut default, image::ImageFormat::Png).unwrap();
        let default = default.into_inner().len() as u64;
        assert!(
            ours < default,
            "{ours} bytes against the default's {default}"
        );
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back.as_raw(), img.to_rgb8().as_raw());
    }

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
    }

    #[test]
    fn failed_write_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.txt");
        write_atomic(&path, b"good").unwrap();
        let err = write_atomic_with(&path, |_| anyhow::bail!("encoder failed")).unwrap_err();
        assert!(format!("{err:#}").contains("keep.txt"));
        assert_eq!(std::fs::read(&path).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn threads_writing_one_file_never_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.txt");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, &[t; 4096]).unwrap();
                    }
                });
            }
        });
        // Whichever writer won, the file is one writer's whole content.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn output_is_readable_by_others_as_plain_files_are() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.txt");
        let plain = dir.path().join("plain.txt");
        write_atomic(&ours, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
    }

    #[test]
    fn stale_temporary_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("phase-all");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join(format!("{TEMP_PREFIX}checkpoint.safetensors.a1b2c3")),
            b"x",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(format!("{TEMP_PREFIX}config.toml.zz")),
            b"x",
        )
        .unwrap();
        std::fs::write(sub.join("checkpoint.safetensors"), b"keep").unwrap();
        std::fs::write(
            sub.join(".checkpoint.safetensors.tmp.123"),
            b"older version's",
        )
        .unwrap();
        std::fs::write(sub.join(".notes.tmp.draft"), b"not ours").unwrap();
        std::fs::write(sub.join("photo.tmp.7"), b"not ours").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 3);
        let mut left: Vec<String> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".notes.tmp.draft", "checkpoint.safetensors", "photo.tmp.7"]
        );
        assert_eq!(
            remove_stale_temp_files(&dir.path().join("missing")).unwrap(),
            0
        );
    }
}
