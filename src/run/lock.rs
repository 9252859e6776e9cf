//! The writer lock of a run directory: one writing command at a time.
//!
//! The lock is an advisory `flock` on `RUN/.dmlviz.lock`, so the kernel releases it
//! when its holder dies, however it dies. The holder writes its PID and command into
//! the file; a file that still names a holder when the lock is free was left by a
//! killed process, and is reported as stale and taken over.
//!
//! Locks are per open file, so one process must not take the same run's lock twice:
//! the function a command calls for a whole run takes it once, and what it calls
//! does not.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside a run directory.
pub const LOCK_FILE: &str = ".dmlviz.lock";

/// A held writer lock; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    /// The holder named by a lock file whose process had died (a killed command).
    pub stale_holder: Option<String>,
}

impl RunLock {
    /// Takes the writer lock of the run directory `root` (created when missing) for
    /// `command`, or fails at once, naming the command that holds it.
    pub fn acquire(root: &Path, command: &str) -> Result<RunLock> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating directory {}", root.display()))?;
        let path = root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        let locked = file.try_lock();
        let mut previous = String::new();
        // The holder's note is a hint for the message; an unreadable one is not an error.
        let _ = file.read_to_string(&mut previous);
        let previous = previous.trim().to_string();
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = if previous.is_empty() { "another dmlviz command".into() } else { previous };
                anyhow::bail!(
                    "{} is being written by {holder}; wait for it to finish (or stop it) and run again",
                    root.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        let note = format!("pid {} (dmlviz {command})\n", std::process::id());
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(note.as_bytes()))
            .with_context(|| format!("writing lock file {}", path.display()))?;
        let stale_holder = (!previous.is_empty()).then_some(previous);
        Ok(RunLock { file, path, stale_holder })
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // An empty file marks a clean release; the kernel drops the lock with the file.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_refused_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "train").unwrap();
        assert!(first.stale_holder.is_none());
        let err = RunLock::acquire(dir.path(), "eval").unwrap_err().to_string();
        assert!(err.contains("dmlviz train"), "{err}");
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        let again = RunLock::acquire(dir.path(), "eval").unwrap();
        assert!(again.stale_holder.is_none(), "a clean release is not stale");
    }

    #[test]
    fn lock_file_left_by_a_dead_holder_is_reported_stale() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "pid 999999 (dmlviz train)\n").unwrap();
        let lock = RunLock::acquire(dir.path(), "index add").unwrap();
        assert_eq!(lock.stale_holder.as_deref(), Some("pid 999999 (dmlviz train)"));
        let note = std::fs::read_to_string(lock.path()).unwrap();
        assert!(note.contains("dmlviz index add"), "{note}");
    }
}
