//! Downloads packages from the registries this project may use (npm, Debian)
//! with their normal clients, into a cache directory, and reads files out of them.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command, failing with its stderr when it exits non-zero.
fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Fetches `name@version` from the npm registry with `npm pack` into `cache`
/// (skipped when the tarball is already there) and returns the tarball's path.
pub fn npm_tarball(name: &str, version: &str, cache: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let file = cache.join(format!("{name}-{version}.tgz"));
    if !file.exists() {
        eprintln!("fetching npm package {name}@{version}");
        run(
            Command::new("npm")
                .args([
                    "pack",
                    "--silent",
                    &format!("{name}@{version}"),
                    "--pack-destination",
                ])
                .arg(cache),
            &format!("npm pack {name}@{version}"),
        )?;
        if !file.exists() {
            bail!(
                "npm pack {name}@{version} did not produce {}",
                file.display()
            );
        }
    }
    Ok(file)
}

/// Visits every regular file of a `.tgz` whose path (inside the archive) passes `wanted`.
pub fn for_each_in_tgz(
    tgz: &Path,
    wanted: impl Fn(&str) -> bool,
    mut visit: impl FnMut(&str, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(tgz).with_context(|| format!("opening {}", tgz.display()))?;
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    for entry in archive
        .entries()
        .with_context(|| format!("reading {}", tgz.display()))?
    {
        let mut entry = entry.with_context(|| format!("reading {}", tgz.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        if !wanted(&path) {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        std::io::Read::read_to_end(&mut entry, &mut bytes)
            .with_context(|| format!("reading {path} in {}", tgz.display()))?;
        visit(&path, bytes)?;
    }
    Ok(())
}

/// A Debian package unpacked into a directory: `root` is where `usr/` lives.
pub struct DebianPackage {
    pub name: String,
    pub version: String,
    pub root: PathBuf,
}

/// Downloads a Debian package with `apt-get download` into `cache` and unpacks it with
/// `dpkg-deb -x` (both skipped when already done). Runs `apt-get update` once if apt
/// does not know the package yet.
pub fn debian_package(name: &str, cache: &Path) -> Result<DebianPackage> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let find_deb = || -> Option<PathBuf> {
        std::fs::read_dir(cache)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                n.starts_with(&format!("{name}_")) && n.ends_with(".deb")
            })
    };
    let deb = match find_deb() {
        Some(deb) => deb,
        None => {
            eprintln!("fetching Debian package {name}");
            let download = || {
                run(
                    Command::new("apt-get")
                        .args(["download", "-q", name])
                        .current_dir(cache),
                    &format!("apt-get download {name}"),
                )
            };
            if download().is_err() {
                run(
                    Command::new("apt-get").args(["update", "-qq"]),
                    "apt-get update",
                )?;
                download()?;
            }
            find_deb().with_context(|| {
                format!(
                    "apt-get download {name} left no .deb in {}",
                    cache.display()
                )
            })?
        }
    };
    let file_name = deb
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // name_version_arch.deb, with ':' (epoch) escaped as %3a by apt.
    let version = file_name
        .split('_')
        .nth(1)
        .unwrap_or("unknown")
        .replace("%3a", ":");
    let root = cache.join(format!("{name}-unpacked"));
    if !root.join("usr").exists() {
        let tmp = cache.join(format!("{name}-unpacking"));
        let _ = std::fs::remove_dir_all(&tmp);
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp),
            &format!("dpkg-deb -x {}", deb.display()),
        )?;
        std::fs::rename(&tmp, &root)?;
    }
    Ok(DebianPackage {
        name: name.to_string(),
        version,
        root,
    })
}
