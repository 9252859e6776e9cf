//! A throwaway PostgreSQL cluster for the tests and `make bench-serve`: the server of
//! the PyPI wheel `pgserver` 0.1.4 (PostgreSQL 16.2 with pgvector 0.6.2, unpacked by
//! `scripts/setup-pgserver.sh`), initialised in a temporary directory and listening
//! on a loopback port. PostgreSQL refuses to run as root, so as root it runs as the
//! unprivileged user [`SERVER_USER`], created when missing. Dropping the cluster stops
//! it, also when a test panics.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `scripts/setup-pgserver.sh` unpacks the server, under the crate root.
pub const BUNDLED_BIN: &str = ".cache/pgserver-0.1.4/pgserver/pginstall/bin";
/// Overrides [`BUNDLED_BIN`]: a directory holding `initdb`, `pg_ctl` and `postgres`.
pub const BIN_ENV: &str = "DMLVIZ_PG_BIN";
/// The system user the server runs as when we are root.
pub const SERVER_USER: &str = "dmlviz-pg";

/// A running cluster in a temporary directory.
pub struct LocalCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the server's commands as [`SERVER_USER`] (we are root).
    as_user: bool,
    /// Extra `-c name=value` options of the server.
    settings: String,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl LocalCluster {
    /// The server binaries: `$DMLVIZ_PG_BIN`, or the unpacked wheel under `crate_root`.
    pub fn binaries(crate_root: &Path) -> Result<PathBuf> {
        let bin = match std::env::var_os(BIN_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => crate_root.join(BUNDLED_BIN),
        };
        if !bin.join("pg_ctl").is_file() {
            bail!(
                "{}: no pg_ctl; run `bash scripts/setup-pgserver.sh` (or set {BIN_ENV})",
                bin.display()
            );
        }
        Ok(bin)
    }

    /// Initialises and starts a cluster (trust authentication, loopback only).
    pub fn start(crate_root: &Path) -> Result<LocalCluster> {
        Self::start_with(crate_root, &[])
    }

    /// [`LocalCluster::start`] with extra server settings (`name`, `value`), e.g. a
    /// larger `maintenance_work_mem` for a big index build.
    pub fn start_with(crate_root: &Path, settings: &[(&str, &str)]) -> Result<LocalCluster> {
        let bin = Self::binaries(crate_root)?;
        let as_user = is_root();
        if as_user {
            ensure_user()?;
        }
        let dir = tempfile::Builder::new()
            .prefix("dmlviz-pg.")
            .tempdir()
            .context("creating the cluster's directory")?;
        let cluster = LocalCluster {
            bin,
            port: free_port()?,
            dir,
            as_user,
            settings: settings
                .iter()
                .map(|(name, value)| format!(" -c {name}={value}"))
                .collect(),
        };
        if as_user {
            let status = Command::new("chown")
                .args([SERVER_USER, &cluster.dir.path().display().to_string()])
                .status()
                .context("chown of the cluster directory")?;
            if !status.success() {
                bail!(
                    "chown {SERVER_USER} {} failed",
                    cluster.dir.path().display()
                );
            }
        }
        let data = cluster.data_dir().display().to_string();
        cluster.server_command(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        cluster.resume()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's programs (as [`SERVER_USER`] when we are root).
    fn server_command(&self, program: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_user {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        if !out.status.success() {
            bail!(
                "{} {} failed: {}{}",
                exe.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Starts the (stopped) server again on the same port and data.
    pub fn resume(&self) -> Result<()> {
        let data = self.data_dir().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100{}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        self.server_command(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
    }

    /// Stops the server at once (`immediate`: as a crash would, without a checkpoint).
    pub fn kill(&self) -> Result<()> {
        let data = self.data_dir().display().to_string();
        self.server_command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
    }

    /// The server's log so far (what it said about clients that went away, for one).
    pub fn log(&self) -> Result<String> {
        let path = self.dir.path().join("server.log");
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// The URL of the `postgres` database as the superuser.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Creates [`SERVER_USER`] when missing (a system user without a login shell or home).
fn ensure_user() -> Result<()> {
    let known = Command::new("id")
        .arg(SERVER_USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if known {
        return Ok(());
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SERVER_USER,
        ])
        .output()
        .context("running useradd")?;
    // Another test process may have created it meanwhile (exit 9: the name exists).
    if !out.status.success() && out.status.code() != Some(9) {
        bail!(
            "useradd {SERVER_USER} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
