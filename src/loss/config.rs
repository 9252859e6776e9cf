//! The `[loss]` table of an experiment config and the constructor that turns it into
//! a [`MetricLoss`].

use super::arcface::ArcFace;
use super::classifier::Classifier;
use super::epshn::{EasyPositiveHardNegative, EasyPositiveSemiHardNegative};
use super::nt_xent::NtXent;
use super::proxy_nca::ProxyNca;
use super::sub_center_arcface::SubCenterArcFace;
use super::MetricLoss;
use crate::search::Distance;
use serde::{Deserialize, Serialize};
use tch::nn;

/// Which loss, with its hyper-parameters; every field defaults to the reference
/// value (docs/REFERENCE.md, "Losses"), so `kind = "arcface"` alone is a complete table.
/// In TOML: `[loss]` with `kind = "epshn"`, `sigma = 0.1`, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LossConfig {
    /// EPSHN, official softmax form ([`EasyPositiveHardNegative`]).
    Epshn {
        /// Softmax temperature (0.1).
        #[serde(default = "default_sigma")]
        sigma: f64,
    },
    /// EPSHN, PML form: easy positive, semi-hard negative, triplet margin
    /// ([`EasyPositiveSemiHardNegative`]); uses the model's distance.
    EpshnTriplet {
        /// Triplet margin (0.05).
        #[serde(default = "default_triplet_margin")]
        margin: f64,
    },
    /// ProxyNCA ([`ProxyNca`]).
    ProxyNca {
        /// Softmax scale (1; about 14 is the CUB-tuned value).
        #[serde(default = "default_proxy_scale")]
        scale: f64,
    },
    /// ArcFace ([`ArcFace`]).
    Arcface {
        /// Angular margin in radians (0.5 rad = 28.6°).
        #[serde(default = "default_arc_margin")]
        margin: f64,
        /// Logit scale (64).
        #[serde(default = "default_arc_scale")]
        scale: f64,
    },
    /// Sub-center ArcFace ([`SubCenterArcFace`]).
    SubCenterArcface {
        /// Angular margin in radians (0.5).
        #[serde(default = "default_arc_margin")]
        margin: f64,
        /// Logit scale (64).
        #[serde(default = "default_arc_scale")]
        scale: f64,
        /// Sub-centres per class (3).
        #[serde(default = "default_sub_centers")]
        sub_centers: i64,
    },
    /// Linear classifier + cross-entropy ([`Classifier`]).
    Classifier {},
    /// SimCLR's NT-Xent ([`NtXent`]); rows i and i + N of a batch are two views.
    NtXent {
        /// Temperature (0.5, SimCLR's CIFAR value).
        #[serde(default = "default_temperature")]
        temperature: f64,
    },
}

impl Default for LossConfig {
    /// The reference experiments' loss: EPSHN in its official form.
    fn default() -> Self {
        LossConfig::Epshn {
            sigma: default_sigma(),
        }
    }
}

impl LossConfig {
    /// The `kind` string, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            LossConfig::Epshn { .. } => "epshn",
            LossConfig::EpshnTriplet { .. } => "epshn_triplet",
            LossConfig::ProxyNca { .. } => "proxy_nca",
            LossConfig::Arcface { .. } => "arcface",
            LossConfig::SubCenterArcface { .. } => "sub_center_arcface",
            LossConfig::Classifier {} => "classifier",
            LossConfig::NtXent { .. } => "nt_xent",
        }
    }

    /// True for losses with learnable parameters (proxies, class weights), which
    /// need an optimiser group and must be saved with the checkpoint.
    pub fn has_parameters(&self) -> bool {
        matches!(
            self,
            LossConfig::ProxyNca { .. }
                | LossConfig::Arcface { .. }
                | LossConfig::SubCenterArcface { .. }
                | LossConfig::Classifier {}
        )
    }

    /// Checks the values (positive temperatures and scales, at least one sub-centre);
    /// the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("loss.{name} must be a positive number, got {v}"))
            }
        };
        let non_negative = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "loss.{name} must be a non-negative number, got {v}"
                ))
            }
        };
        match *self {
            LossConfig::Epshn { sigma } => positive("sigma", sigma),
            LossConfig::EpshnTriplet { margin } => non_negative("margin", margin),
            LossConfig::ProxyNca { scale } => positive("scale", scale),
            LossConfig::Arcface { margin, scale } => {
                non_negative("margin", margin)?;
                positive("scale", scale)
            }
            LossConfig::SubCenterArcface {
                margin,
                scale,
                sub_centers,
            } => {
                non_negative("margin", margin)?;
                positive("scale", scale)?;
                if sub_centers < 1 {
                    return Err(format!(
                        "loss.sub_centers must be at least 1, got {sub_centers}"
                    ));
                }
                Ok(())
            }
            LossConfig::Classifier {} => Ok(()),
            LossConfig::NtXent { temperature } => positive("temperature", temperature),
        }
    }
}

fn default_sigma() -> f64 {
    0.1
}
fn default_triplet_margin() -> f64 {
    0.05
}
fn default_proxy_scale() -> f64 {
    ProxyNca::DEFAULT_SCALE
}
fn default_arc_margin() -> f64 {
    ArcFace::DEFAULT_MARGIN
}
fn default_arc_scale() -> f64 {
    ArcFace::DEFAULT_SCALE
}
fn default_sub_centers() -> i64 {
    SubCenterArcFace::DEFAULT_SUB_CENTERS
}
fn default_temperature() -> f64 {
    0.5
}

/// Builds the loss `cfg` describes. Learnable parameters are created under `path`
/// (the trainer passes `vs.root() / "loss"` with an optimiser group of its own, so
/// they are checkpointed and get their own learning rate). `distance` is used by
/// the losses that mine by distance (`epshn_triplet`); the others fix their own
/// geometry (cosine, or squared L2 between normalised vectors for ProxyNCA).
pub fn build(
    cfg: &LossConfig,
    path: &nn::Path,
    embedding_dim: i64,
    num_classes: i64,
    distance: Distance,
) -> Box<dyn MetricLoss> {
    match *cfg {
        LossConfig::Epshn { sigma } => Box::new(EasyPositiveHardNegative { sigma }),
        LossConfig::EpshnTriplet { margin } => {
            Box::new(EasyPositiveSemiHardNegative { margin, distance })
        }
        LossConfig::ProxyNca { scale } => {
            Box::new(ProxyNca::new(path, embedding_dim, num_classes, scale))
        }
        LossConfig::Arcface { margin, scale } => Box::new(ArcFace::new(
            path,
            embedding_dim,
            num_classes,
            margin,
            scale,
        )),
        LossConfig::SubCenterArcface {
            margin,
            scale,
            sub_centers,
        } => Box::new(SubCenterArcFace::new(
            path,
            embedding_dim,
            num_classes,
            sub_centers,
            margin,
            scale,
        )),
        LossConfig::Classifier {} => Box::new(Classifier::new(path, embedding_dim, num_classes)),
        LossConfig::NtXent { temperature } => Box::new(NtXent { temperature }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[derive(Deserialize)]
    struct Wrapper {
        loss: LossConfig,
    }

    fn parse(toml_text: &str) -> Result<LossConfig, String> {
        toml::from_str::<Wrapper>(toml_text)
            .map(|w| w.loss)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_reference_values() {
        assert_eq!(
            parse("[loss]\nkind = \"epshn\"").unwrap(),
            LossConfig::Epshn { sigma: 0.1 }
        );
        assert_eq!(
            parse("[loss]\nkind = \"epshn_triplet\"").unwrap(),
            LossConfig::EpshnTriplet { margin: 0.05 }
        );
        assert_eq!(
            parse("[loss]\nkind = \"proxy_nca\"").unwrap(),
            LossConfig::ProxyNca { scale: 1.0 }
        );
        assert_eq!(
            parse("[loss]\nkind = \"arcface\"").unwrap(),
            LossConfig::Arcface {
                margin: 0.5,
                scale: 64.0
            }
        );
        assert_eq!(
            parse("[loss]\nkind = \"sub_center_arcface\"").unwrap(),
            LossConfig::SubCenterArcface {
                margin: 0.5,
                scale: 64.0,
                sub_centers: 3
            }
        );
        assert_eq!(
            parse("[loss]\nkind = \"classifier\"").unwrap(),
            LossConfig::Classifier {}
        );
        assert_eq!(
            parse("[loss]\nkind = \"nt_xent\"").unwrap(),
            LossConfig::NtXent { temperature: 0.5 }
        );
        assert_eq!(LossConfig::default(), LossConfig::Epshn { sigma: 0.1 });
    }

    #[test]
    fn values_round_trip_and_typos_are_rejected() {
        let cfg = parse("[loss]\nkind = \"proxy_nca\"\nscale = 14.0").unwrap();
        assert_eq!(cfg, LossConfig::ProxyNca { scale: 14.0 });
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(toml::from_str::<LossConfig>(&text).unwrap(), cfg);
        let err = parse("[loss]\nkind = \"arcface\"\nmargn = 0.3").unwrap_err();
        assert!(err.contains("margn"), "{err}");
        let err = parse("[loss]\nkind = \"classifier\"\nscale = 2.0").unwrap_err();
        assert!(err.contains("scale"), "{err}");
        assert!(parse("[loss]\nkind = \"triplet\"").is_err());
        for cfg in [
            LossConfig::Epshn { sigma: 0.1 },
            LossConfig::SubCenterArcface {
                margin: 0.5,
                scale: 64.0,
                sub_centers: 3,
            },
            LossConfig::Classifier {},
        ] {
            assert_eq!(
                parse(&format!("[loss]\n{}", toml::to_string(&cfg).unwrap())).unwrap(),
                cfg
            );
            assert_eq!(
                serde_json::from_value::<LossConfig>(serde_json::to_value(&cfg).unwrap()).unwrap(),
                cfg
            );
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(LossConfig::Epshn { sigma: 0.1 }.validate().is_ok());
        assert!(LossConfig::Epshn { sigma: 0.0 }
            .validate()
            .unwrap_err()
            .contains("sigma"));
        let e = LossConfig::SubCenterArcface {
            margin: 0.5,
            scale: 64.0,
            sub_centers: 0,
        }
        .validate();
        assert!(e.unwrap_err().contains("sub_centers"));
        assert!(LossConfig::NtXent { temperature: -1.0 }
            .validate()
            .unwrap_err()
            .contains("temperature"));
    }

    #[test]
    fn build_makes_every_kind_and_registers_parameters() {
        tch::set_num_threads(1);
        let kinds = [
            ("epshn", 0usize, false),
            ("epshn_triplet", 0, false),
            ("proxy_nca", 1, true),
            ("arcface", 1, true),
            ("sub_center_arcface", 1, true),
            ("classifier", 2, true),
            ("nt_xent", 0, false),
        ];
        tch::manual_seed(0);
        let emb = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1]);
        for (kind, params, has_logits) in kinds {
            let cfg = parse(&format!("[loss]\nkind = \"{kind}\"")).unwrap();
            assert_eq!(cfg.kind(), kind);
            assert_eq!(cfg.has_parameters(), params > 0, "{kind}");
            let vs = nn::VarStore::new(Device::Cpu);
            let loss = build(
                &cfg,
                &(vs.root() / "loss").set_group(1),
                4,
                3,
                Distance::Cosine,
            );
            assert_eq!(loss.name(), kind);
            assert_eq!(vs.trainable_variables().len(), params, "{kind}");
            assert!(
                vs.variables().keys().all(|k| k.starts_with("loss.")),
                "{kind}"
            );
            let value = loss.loss(&emb, &labels);
            assert_eq!(value.size(), Vec::<i64>::new(), "{kind}: scalar loss");
            assert!(value.double_value(&[]).is_finite(), "{kind}");
            match loss.logits(&emb) {
                Some(l) => {
                    assert!(has_logits, "{kind}");
                    assert_eq!(l.size(), vec![8, 3], "{kind}");
                }
                None => assert!(!has_logits, "{kind}"),
            }
        }
    }
}
