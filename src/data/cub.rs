//! The CUB-200-2011 layout: `images.txt` (id, relative path under `images/`),
//! `image_class_labels.txt` (id, class id), `classes.txt` (class id, name) and an
//! optional `train_test_split.txt` (id, 1 = train).

use super::dataset::{Dataset, Sample, Unreadable};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};

/// Parses a whitespace-separated `<integer id> <value>` file; errors name the file and line.
fn read_pairs(path: &Path) -> Result<Vec<(usize, u64, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (id, value) = line.split_once(char::is_whitespace).with_context(|| {
            format!("{name} line {line_no}: expected `<id> <value>`, got {line:?}")
        })?;
        let id: u64 = id
            .parse()
            .with_context(|| format!("{name} line {line_no}: id {id:?} is not a whole number"))?;
        rows.push((line_no, id, value.trim().to_string()));
    }
    Ok(rows)
}

/// Parses `<id> <value>` rows into a map, rejecting duplicate ids.
fn read_map(path: &Path) -> Result<HashMap<u64, (usize, String)>> {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut map = HashMap::new();
    for (line_no, id, value) in read_pairs(path)? {
        if let Some((first, _)) = map.insert(id, (line_no, value)) {
            bail!("{name} line {line_no}: id {id} already given on line {first}");
        }
    }
    Ok(map)
}

/// Opens a dataset in the CUB-200-2011 layout. Long: one pass per CUB file, each with
/// the line-numbered errors of its own format.
pub fn open_cub(root: &Path) -> Result<Dataset> {
    let class_rows = read_pairs(&root.join("classes.txt"))?;
    let mut class_ids = BTreeMap::new();
    for (line_no, id, name) in class_rows {
        if class_ids.insert(id, name).is_some() {
            bail!("classes.txt line {line_no}: class id {id} given twice");
        }
    }
    let classes: Vec<String> = class_ids.values().cloned().collect();
    let class_index: HashMap<u64, usize> = class_ids
        .keys()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();

    let labels = read_map(&root.join("image_class_labels.txt"))?;
    let split_path = root.join("train_test_split.txt");
    let split = if split_path.exists() {
        Some(read_map(&split_path)?)
    } else {
        None
    };

    let mut candidates = Vec::new();
    let mut unreadable = Vec::new();
    for (line_no, id, rel) in read_pairs(&root.join("images.txt"))? {
        let (label_line, class_id) = labels.get(&id).with_context(|| {
            format!(
                "images.txt line {line_no}: image id {id} has no entry in image_class_labels.txt"
            )
        })?;
        let class_id: u64 = class_id
            .parse()
            .with_context(|| format!("image_class_labels.txt line {label_line}: class id {class_id:?} is not a whole number"))?;
        let label = *class_index
            .get(&class_id)
            .with_context(|| format!("image_class_labels.txt line {label_line}: class id {class_id} is not in classes.txt"))?;
        let official_train = match &split {
            None => None,
            Some(split) => {
                let (split_line, flag) = split
                    .get(&id)
                    .with_context(|| format!("images.txt line {line_no}: image id {id} has no entry in train_test_split.txt"))?;
                Some(match flag.as_str() {
                    "1" => true,
                    "0" => false,
                    other => bail!(
                        "train_test_split.txt line {split_line}: expected 0 or 1, got {other:?}"
                    ),
                })
            }
        };
        // A listed path must stay inside images/: `..` or an absolute path could make
        // a dataset read (and a report show) any file on the machine.
        if Path::new(&rel)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            bail!(
                "{} line {line_no}: {rel:?} leaves the dataset's images/ folder \
                 (absolute paths and `..` are refused)",
                root.join("images.txt").display()
            );
        }
        let path = root.join("images").join(&rel);
        if path.is_file() {
            candidates.push(Sample {
                path,
                label,
                official_train,
            });
        } else {
            unreadable.push(Unreadable {
                path,
                reason: format!("listed in images.txt line {line_no} but missing"),
            });
        }
    }
    let name = super::dataset::directory_name(root);
    Dataset::from_candidates(
        name,
        root.to_path_buf(),
        "cub",
        classes,
        candidates,
        unreadable,
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CUB dataset `root/ds` whose images.txt lists `listed`; `root/secret.png` and
    /// `ds/images/c/{0,1}.png` exist.
    fn dataset(root: &Path, listed: &str) -> std::path::PathBuf {
        let ds = root.join("ds");
        std::fs::create_dir_all(ds.join("images/c")).unwrap();
        let png = image::RgbImage::from_pixel(20, 20, image::Rgb([9, 80, 200]));
        for p in [
            root.join("secret.png"),
            ds.join("images/c/0.png"),
            ds.join("images/c/1.png"),
        ] {
            png.save(&p).unwrap();
        }
        std::fs::write(
            ds.join("images.txt"),
            format!("1 c/0.png\n2 c/1.png\n3 {listed}\n"),
        )
        .unwrap();
        std::fs::write(ds.join("image_class_labels.txt"), "1 1\n2 1\n3 1\n").unwrap();
        std::fs::write(ds.join("classes.txt"), "1 001.c\n").unwrap();
        ds
    }

    #[test]
    fn listed_paths_that_leave_the_dataset_are_refused_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("secret.png");
        for listed in [
            "../../secret.png",
            "c/../../../secret.png",
            outside.to_str().unwrap(),
        ] {
            let ds = dataset(dir.path(), listed);
            let err = format!("{:#}", open_cub(&ds).unwrap_err());
            assert!(
                err.contains("images.txt line 3") && err.contains("leaves the dataset"),
                "{listed}: {err}"
            );
        }
        // A path inside, even spelled with `./`, is fine.
        let d = open_cub(&dataset(dir.path(), "./c/1.png")).unwrap();
        assert_eq!(d.samples.len(), 3);
    }
}
