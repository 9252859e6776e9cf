//! `hardware.json`: the machine a run was trained on, recorded by `dmlviz train` when it
//! finishes, so the report (possibly built elsewhere) can say what the training times
//! were measured on.

use super::record::{legacy_schema, SCHEMA_VERSION};
use super::RunDir;
use crate::atomic::write_json;
use serde::{Deserialize, Serialize};

/// What the training machine was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hardware {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// Host name.
    pub host: Option<String>,
    /// Operating system (`/etc/os-release` PRETTY_NAME, else the target OS).
    pub os: String,
    /// CPU model name.
    pub cpu: Option<String>,
    /// Logical CPUs available to the process.
    pub logical_cpus: usize,
    /// Total memory in GiB.
    pub memory_gib: Option<f64>,
    /// CUDA devices libtorch sees.
    pub cuda_devices: i64,
    /// dmlviz version that trained the run.
    pub dmlviz: String,
}

/// The first value of `key` in a `key: value` or `KEY=value` text file.
fn field(path: &str, key: &str, separator: char) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(separator)?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

impl Hardware {
    /// Describes this machine.
    pub fn detect() -> Hardware {
        Hardware {
            schema_version: SCHEMA_VERSION,
            host: std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty()),
            os: field("/etc/os-release", "PRETTY_NAME", '=')
                .unwrap_or_else(|| std::env::consts::OS.to_string()),
            cpu: field("/proc/cpuinfo", "model name", ':'),
            logical_cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_gib: field("/proc/meminfo", "MemTotal", ':')
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kb| (kb / 1048576.0 * 10.0).round() / 10.0),
            cuda_devices: tch::Cuda::device_count(),
            dmlviz: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let mut parts = vec![
            self.cpu.clone().unwrap_or_else(|| "unknown CPU".into()),
            format!("{} logical CPUs", self.logical_cpus),
        ];
        parts.extend(self.memory_gib.map(|m| format!("{m} GiB memory")));
        parts.push(if self.cuda_devices > 0 {
            format!("{} CUDA device(s)", self.cuda_devices)
        } else {
            "no CUDA device".into()
        });
        parts.push(self.os.clone());
        parts.extend(self.host.as_ref().map(|h| format!("host {h}")));
        parts.push(format!("dmlviz {}", self.dmlviz));
        parts.join(", ")
    }
}

/// Records this machine in the run's `hardware.json`.
pub fn record(run: &RunDir) -> anyhow::Result<()> {
    write_json(&run.hardware(), &Hardware::detect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_describes_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        record(&run).unwrap();
        let h: Hardware = super::super::record::read_record(&run.hardware())
            .unwrap()
            .unwrap();
        assert_eq!(h.schema_version, SCHEMA_VERSION);
        assert!(h.logical_cpus >= 1);
        assert!(h.describe().contains("logical CPUs"));
    }
}
