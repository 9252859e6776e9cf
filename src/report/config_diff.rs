//! How a run's resolved config differs from its baseline.
//!
//! The rule: a config with a `baseline = "X"` key is compared with the preset named
//! `X` — the file `X.toml` in a family folder of the presets directory
//! (`experiments/*/X.toml`, families searched in name order, then
//! `experiments/X.toml`). A config without a `baseline` key is a family's root
//! preset: it is compared with the preset of its own name, which shows what the run
//! changed on the command line (`--epochs`, `--device`...). Both sides are parsed
//! and resolved the same way (defaults filled), then compared key by key; `name`,
//! `description` and `baseline` are not part of the difference.

use crate::config::ExperimentConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One key whose value differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// Dotted key (`model.embedding_dim`).
    pub key: String,
    /// Value in the baseline, `None` when the baseline lacks the key.
    pub baseline: Option<String>,
    /// Value in the run, `None` when the run lacks the key.
    pub run: Option<String>,
}

/// The comparison of a run's config with its baseline preset.
#[derive(Debug, Clone)]
pub struct ConfigDiff {
    /// Name of the preset compared with.
    pub baseline: String,
    /// Its file.
    pub path: PathBuf,
    /// Whether the preset is the run's declared baseline (else its own preset).
    pub declared: bool,
    /// The keys that differ, sorted.
    pub differences: Vec<Difference>,
}

impl ConfigDiff {
    /// One line for the comparison table: `key: a → b; ...` (at most `max` keys).
    pub fn summary(&self, max: usize) -> String {
        if self.differences.is_empty() {
            return if self.declared {
                format!("same as {}", self.baseline)
            } else {
                "the preset, unchanged".into()
            };
        }
        let mut parts: Vec<String> = self
            .differences
            .iter()
            .take(max)
            .map(|d| {
                format!(
                    "{}: {} → {}",
                    d.key,
                    d.baseline.as_deref().unwrap_or("–"),
                    d.run.as_deref().unwrap_or("–")
                )
            })
            .collect();
        if self.differences.len() > max {
            parts.push(format!("+{} more", self.differences.len() - max));
        }
        parts.join("; ")
    }
}

/// Finds the preset file named `name` under `presets_dir` (see the module rule).
pub fn find_preset(presets_dir: &Path, name: &str) -> Option<PathBuf> {
    let file = format!("{name}.toml");
    let mut families: Vec<PathBuf> = std::fs::read_dir(presets_dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    families.sort();
    families
        .into_iter()
        .map(|f| f.join(&file))
        .chain(std::iter::once(presets_dir.join(&file)))
        .find(|p| p.is_file())
}

/// A config flattened to dotted keys with TOML-formatted values.
pub fn flatten(cfg: &ExperimentConfig) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let value = toml::Value::try_from(cfg).unwrap_or(toml::Value::Table(Default::default()));
    flatten_into("", &value, &mut out);
    for key in ["name", "description", "baseline"] {
        out.remove(key);
    }
    out
}

fn flatten_into(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(&key, v, out);
            }
        }
        v => {
            out.insert(prefix.to_string(), v.to_string());
        }
    }
}

/// The keys whose values differ between two configs.
pub fn differences(baseline: &ExperimentConfig, run: &ExperimentConfig) -> Vec<Difference> {
    let (a, b) = (flatten(baseline), flatten(run));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Difference {
            key: k.clone(),
            baseline: a.get(k).cloned(),
            run: b.get(k).cloned(),
        })
        .collect()
}

/// Compares a run's config with its baseline preset; `Err` says why no comparison
/// could be made (no preset found, preset unreadable).
pub fn diff_against_baseline(
    cfg: &ExperimentConfig,
    presets_dir: &Path,
) -> Result<ConfigDiff, String> {
    let (name, declared) = match &cfg.baseline {
        Some(b) => (b.clone(), true),
        None => (cfg.name.clone(), false),
    };
    let Some(path) = find_preset(presets_dir, &name) else {
        return Err(if declared {
            format!(
                "baseline preset {name:?} not found under {}",
                presets_dir.display()
            )
        } else {
            format!(
                "no baseline key, and no preset named {name:?} under {}",
                presets_dir.display()
            )
        });
    };
    let preset = ExperimentConfig::load(&path).map_err(|e| format!("{e:#}"))?;
    Ok(ConfigDiff {
        baseline: name,
        differences: differences(&preset, cfg),
        path,
        declared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name = \"base\"\n[data]\npath = \"d\"\nimage_size = 32\n[model]\nbackbone = \"mobilenet_v2\"\ninit = \"imagenet\"\n\
                        distance = \"cosine\"\n[loss]\nkind = \"epshn\"\n[training]\nepochs = 10\nclasses_per_batch = 4\nimages_per_class = 2\n";

    fn cfg(text: &str) -> ExperimentConfig {
        ExperimentConfig::from_toml(text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn finds_the_declared_baseline_in_a_family_folder_and_diffs_resolved_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fam")).unwrap();
        std::fs::write(dir.path().join("fam/base.toml"), BASE).unwrap();
        let run = cfg(&BASE
            .replace("name = \"base\"", "name = \"x\"\nbaseline = \"base\"")
            .replace("epochs = 10", "epochs = 20"));
        let diff = diff_against_baseline(&run, dir.path()).unwrap();
        assert!(diff.declared);
        assert_eq!(
            diff.differences,
            vec![Difference {
                key: "training.epochs".into(),
                baseline: Some("10".into()),
                run: Some("20".into())
            }]
        );
        assert_eq!(diff.summary(3), "training.epochs: 10 → 20");
        // A root preset is compared with itself: unchanged.
        let own = diff_against_baseline(&cfg(BASE), dir.path()).unwrap();
        assert!(!own.declared && own.differences.is_empty());
        assert_eq!(own.summary(3), "the preset, unchanged");
    }

    #[test]
    fn a_missing_preset_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = diff_against_baseline(
            &cfg(&BASE.replace("name = \"base\"", "name = \"x\"\nbaseline = \"gone\"")),
            dir.path(),
        )
        .unwrap_err();
        assert!(err.contains("\"gone\""), "{err}");
    }
}
