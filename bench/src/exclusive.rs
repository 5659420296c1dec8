//! One bench at a time per machine: two runs at once share the cores (each one's numbers
//! are then meaningless) and the bench's database, key prefix and producer groups. A run
//! holds an exclusive lock on `$SECKILL_CACHE/bench.lock` (shared by every clone, like the
//! build cache) until it exits; the kernel releases it even if the run is killed.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Held for the whole run; dropping it releases the lock.
pub(crate) struct RunLock {
    _file: File,
}

/// `$SECKILL_CACHE/bench.lock`, else `~/.cache/seckill/bench.lock`, else in the temp folder.
pub(crate) fn default_path() -> PathBuf {
    if let Some(cache) = std::env::var_os("SECKILL_CACHE") {
        return PathBuf::from(cache).join("bench.lock");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/seckill/bench.lock"),
        None => std::env::temp_dir().join("seckill-bench.lock"),
    }
}

/// Takes the lock at `path`, or fails at once naming the run (pid) that holds it.
pub(crate) fn acquire(path: &Path) -> anyhow::Result<RunLock> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "another seckill-bench is running on this machine ({}); two runs at once share the cores and \
                 the bench's names, so wait for it to finish (lock: {})",
                holder.trim(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("lock {}", path.display())),
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    write!(file, "pid {}, started in {cwd}", std::process::id())?;
    file.flush()?;
    Ok(RunLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_until_the_first_ends() {
        let path = std::env::temp_dir().join(format!("seckill-bench-lock-test-{}", std::process::id()));
        let first = acquire(&path).unwrap();
        let err = acquire(&path).err().expect("the lock is held").to_string();
        assert!(
            err.contains("another seckill-bench is running") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        drop(acquire(&path).unwrap());
        let _ = std::fs::remove_file(&path);
    }
}
