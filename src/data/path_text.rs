//! File paths in JSON records, without loss and without failing on names that are not
//! UTF-8 (Linux file names are bytes).
//!
//! A UTF-8 path is stored as its plain string, as before. Any other path is stored as
//! `{"bytes_hex": "...", "lossy": "..."}`: its raw bytes for programs, a lossy
//! rendering for people. Use with `#[serde(with = "crate::data::path_text")]` on a
//! `PathBuf` field, or [`vec`] on a `Vec<PathBuf>` field.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};

/// The stored form of one path.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Text(String),
    Bytes { bytes_hex: String, lossy: String },
}

#[cfg(unix)]
fn raw_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

#[cfg(not(unix))]
fn raw_bytes(path: &Path) -> &[u8] {
    // Other platforms' paths are not byte strings; there the lossy text is all we keep.
    path.to_str().unwrap_or_default().as_bytes()
}

#[cfg(unix)]
fn from_raw_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn from_raw_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

fn stored(path: &Path) -> Stored {
    match path.to_str() {
        Some(text) => Stored::Text(text.to_string()),
        None => Stored::Bytes {
            bytes_hex: raw_bytes(path).iter().map(|b| format!("{b:02x}")).collect(),
            lossy: path.to_string_lossy().into_owned(),
        },
    }
}

fn restored(stored: Stored) -> Result<PathBuf, String> {
    match stored {
        Stored::Text(text) => Ok(PathBuf::from(text)),
        Stored::Bytes { bytes_hex, lossy } => {
            let digits = bytes_hex.as_bytes();
            if digits.len() % 2 != 0 {
                return Err(format!("path {lossy:?}: bytes_hex has an odd length"));
            }
            let bytes = digits
                .chunks(2)
                .map(|pair| {
                    std::str::from_utf8(pair)
                        .ok()
                        .and_then(|p| u8::from_str_radix(p, 16).ok())
                        .ok_or_else(|| format!("path {lossy:?}: bytes_hex is not hexadecimal"))
                })
                .collect::<Result<Vec<u8>, String>>()?;
            Ok(from_raw_bytes(bytes))
        }
    }
}

/// Serialises one path (plain string when UTF-8, bytes otherwise).
pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    stored(path).serialize(serializer)
}

/// Reads one path in either stored form.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    restored(Stored::deserialize(deserializer)?).map_err(de::Error::custom)
}

/// The same for a list of paths: `#[serde(with = "crate::data::path_text::vec")]`.
pub mod vec {
    use super::*;

    /// Serialises each path as [`super::serialize`] does.
    pub fn serialize<S: Serializer>(paths: &[PathBuf], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(paths.iter().map(|p| stored(p)))
    }

    /// Reads a list of paths in either stored form.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<PathBuf>, D::Error> {
        Vec::<Stored>::deserialize(deserializer)?
            .into_iter()
            .map(|s| restored(s).map_err(de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        #[serde(with = "super")]
        one: PathBuf,
        #[serde(with = "super::vec")]
        many: Vec<PathBuf>,
    }

    #[test]
    fn utf8_paths_stay_plain_strings() {
        let r = Record {
            one: PathBuf::from("cards/ace <♠>.png"),
            many: vec![PathBuf::from("a.png")],
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"one":"cards/ace <♠>.png","many":["a.png"]}"#);
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_round_trip_byte_for_byte() {
        let name = from_raw_bytes(b"dir/caf\xe9.png".to_vec());
        assert!(name.to_str().is_none());
        let r = Record {
            one: name.clone(),
            many: vec![PathBuf::from("ok.png"), name.clone()],
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""bytes_hex":"6469722f636166e92e706e67""#),
            "{json}"
        );
        assert!(
            json.contains("caf\u{fffd}.png"),
            "the lossy form is for people: {json}"
        );
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert_eq!(raw_bytes(&back.many[1]), b"dir/caf\xe9.png");
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        for bad in [
            r#"{"bytes_hex":"abc","lossy":"x"}"#,
            r#"{"bytes_hex":"zz","lossy":"x"}"#,
        ] {
            let json = format!(r#"{{"one":{bad},"many":[]}}"#);
            let err = serde_json::from_str::<Record>(&json)
                .unwrap_err()
                .to_string();
            assert!(err.contains("bytes_hex"), "{err}");
        }
    }
}
