//! State-dict key mapping: the names a PyTorch embedding network is saved under, turned
//! into dmlviz's var-store names (`backbone.<torchvision name>`, `head.linear.*`,
//! `head.bn.*`; see `model::embedding_net`).
//!
//! Rules, in order, for each entry of the file:
//! 1. the first `--map OLD=NEW` rule whose OLD starts the name replaces that prefix;
//! 2. `module.` (DataParallel) and `model.` (Lightning, wrappers) prefixes are dropped,
//!    repeatedly;
//! 3. names already under `backbone.` or `head.` (a dmlviz checkpoint) stay;
//! 4. pytorch-metric-learning's pair: `trunk.X` is the torchvision backbone (its `fc`
//!    replaced by Identity leaves no `trunk.fc.*`; a `trunk.fc` Linear is the head), and
//!    `embedder.*` is the head: a bare Linear (`embedder.weight`), an `nn.Sequential` of
//!    Linear then BatchNorm1d (`embedder.0.*`, `embedder.1.*`) or named parts
//!    (`embedder.linear.*`/`embedder.fc.*`, `embedder.bn.*`);
//! 5. torchvision names: the classifier (`fc.*` of a ResNet, `classifier.1.*` of a
//!    MobileNetV2, replaced by a Linear to the embedding) is the head, the rest the
//!    backbone.

use crate::model::embedding_net::{BACKBONE_PATH, HEAD_PATH};
use crate::model::Arch;
use anyhow::{bail, Result};

/// One `--map OLD=NEW` rule: a name starting with `old` gets `new` in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The prefix replaced.
    pub old: String,
    /// What replaces it (may be empty: the prefix is dropped).
    pub new: String,
}

impl std::str::FromStr for Rewrite {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Rewrite> {
        match s.split_once('=') {
            Some((old, new)) if !old.is_empty() => Ok(Rewrite {
                old: old.to_string(),
                new: new.to_string(),
            }),
            _ => bail!("--map {s:?}: expected OLD=NEW, e.g. --map encoder.=trunk. (OLD not empty)"),
        }
    }
}

impl std::fmt::Display for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.old, self.new)
    }
}

/// Wrapper prefixes dropped from every name (rule 2).
const WRAPPER_PREFIXES: [&str; 2] = ["module.", "model."];

/// The var-store name of the state-dict entry `name` of an `arch` network.
pub fn dmlviz_name(name: &str, arch: Arch, rewrites: &[Rewrite]) -> String {
    let mut name = match rewrites.iter().find(|r| name.starts_with(r.old.as_str())) {
        Some(r) => format!("{}{}", r.new, &name[r.old.len()..]),
        None => name.to_string(),
    };
    while let Some(rest) = WRAPPER_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
        name = rest.to_string();
    }
    let own = [BACKBONE_PATH, HEAD_PATH]
        .iter()
        .any(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with('.')));
    if own {
        return name;
    }
    if let Some(rest) = name.strip_prefix("embedder.") {
        return head_name(rest);
    }
    let torchvision = name.strip_prefix("trunk.").unwrap_or(&name);
    torchvision_name(torchvision, arch)
}

/// The head variable of an `embedder.*` entry (`rest` follows `embedder.`).
fn head_name(rest: &str) -> String {
    let part = |p: &str| rest.strip_prefix(p).map(str::to_string);
    let (layer, tail) = if rest == "weight" || rest == "bias" {
        ("linear", rest.to_string())
    } else if let Some(t) = part("0.")
        .or_else(|| part("linear."))
        .or_else(|| part("fc."))
    {
        ("linear", t)
    } else if let Some(t) = part("1.").or_else(|| part("bn.")) {
        ("bn", t)
    } else {
        return format!("{HEAD_PATH}.{rest}");
    };
    format!("{HEAD_PATH}.{layer}.{tail}")
}

/// The var of a torchvision-named entry: the classifier is the head's linear layer.
fn torchvision_name(name: &str, arch: Arch) -> String {
    let classifier = match arch {
        Arch::MobileNetV2 => "classifier.1.",
        _ => "fc.",
    };
    match name.strip_prefix(classifier) {
        Some(tail) => format!("{HEAD_PATH}.linear.{tail}"),
        None => format!("{BACKBONE_PATH}.{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str, arch: Arch) -> String {
        dmlviz_name(name, arch, &[])
    }

    #[test]
    fn pml_trunk_and_embedder_layouts() {
        let r18 = Arch::ResNet18;
        assert_eq!(map("trunk.conv1.weight", r18), "backbone.conv1.weight");
        assert_eq!(
            map("trunk.layer4.1.bn2.num_batches_tracked", r18),
            "backbone.layer4.1.bn2.num_batches_tracked"
        );
        assert_eq!(map("embedder.weight", r18), "head.linear.weight");
        assert_eq!(map("embedder.bias", r18), "head.linear.bias");
        assert_eq!(map("embedder.0.weight", r18), "head.linear.weight");
        assert_eq!(map("embedder.1.running_var", r18), "head.bn.running_var");
        assert_eq!(map("embedder.bn.weight", r18), "head.bn.weight");
        assert_eq!(map("embedder.fc.bias", r18), "head.linear.bias");
        // A trunk whose fc was kept as the embedding layer.
        assert_eq!(map("trunk.fc.weight", r18), "head.linear.weight");
        // Something else in an embedder stays visible under head. (reported unexpected).
        assert_eq!(map("embedder.2.weight", r18), "head.2.weight");
    }

    #[test]
    fn wrapper_prefixes_torchvision_names_and_own_names() {
        let r50 = Arch::ResNet50;
        assert_eq!(map("module.trunk.bn1.bias", r50), "backbone.bn1.bias");
        assert_eq!(
            map("model.module.embedder.weight", r50),
            "head.linear.weight"
        );
        assert_eq!(
            map("layer1.0.conv3.weight", r50),
            "backbone.layer1.0.conv3.weight"
        );
        assert_eq!(map("fc.weight", r50), "head.linear.weight");
        assert_eq!(map("module.fc.bias", r50), "head.linear.bias");
        let mnv2 = Arch::MobileNetV2;
        assert_eq!(
            map("features.0.0.weight", mnv2),
            "backbone.features.0.0.weight"
        );
        assert_eq!(map("classifier.1.weight", mnv2), "head.linear.weight");
        assert_eq!(
            map("classifier.0.weight", mnv2),
            "backbone.classifier.0.weight"
        );
        assert_eq!(map("backbone.conv1.weight", r50), "backbone.conv1.weight");
        assert_eq!(map("head.bn.running_mean", r50), "head.bn.running_mean");
        // Only a whole path segment counts as our own prefix.
        assert_eq!(map("headless.weight", r50), "backbone.headless.weight");
    }

    #[test]
    fn map_rules_rewrite_first_and_only_the_first_match() {
        let rules: Vec<Rewrite> = ["encoder.=trunk.", "proj.=embedder.", "encoder.x=never."]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let r18 = Arch::ResNet18;
        assert_eq!(
            dmlviz_name("encoder.layer2.0.conv1.weight", r18, &rules),
            "backbone.layer2.0.conv1.weight"
        );
        assert_eq!(
            dmlviz_name("proj.weight", r18, &rules),
            "head.linear.weight"
        );
        let drop: Rewrite = "net.=".parse().unwrap();
        assert_eq!(
            dmlviz_name("net.conv1.weight", r18, &[drop]),
            "backbone.conv1.weight"
        );
        for bad in ["noequals", "=x"] {
            let err = bad.parse::<Rewrite>().unwrap_err().to_string();
            assert!(err.contains("OLD=NEW"), "{err}");
        }
    }
}
