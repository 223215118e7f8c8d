//! One writer per run directory: a run (training, an import, a copy) holds an exclusive lock on
//! `DIR/.rims.lock` for as long as it writes there, so a second writer is refused at once,
//! naming the holder, instead of two runs overwriting each other's checkpoints. The lock is the
//! operating system's (`flock` on Unix): it goes with the process, so a killed run leaves no
//! stale lock behind. The file is created empty once and never written: a refused command
//! changes nothing; the holder's pid comes from the kernel's table of locks (`/proc/locks`).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{Error, Result};

/// File in the run directory that writers lock.
pub const LOCK_FILE: &str = ".rims.lock";

/// The exclusive lock of a run directory, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Creates `dir` if needed and takes its lock, or says which process holds it. A `dir` inside
/// another run directory is refused before anything is created.
pub fn lock_run(dir: &Path) -> Result<RunLock> {
    super::check_run_place(dir)?;
    std::fs::create_dir_all(dir).map_err(Error::io_on(dir, "cannot create the directory"))?;
    let path = dir.join(LOCK_FILE);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        // A symlink planted at the lock's name is not followed (O_NOFOLLOW).
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(0o400000);
    }
    let file = options
        .open(&path)
        .map_err(Error::io_on(&path, "cannot open the run's lock file"))?;
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(Error::file(&path, "is not a regular file"));
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let who = match holder(&file) {
                Some(pid) => format!("another rims process (pid {pid})"),
                None => "another rims process".to_string(),
            };
            return Err(Error::config(
                "out",
                format!(
                    "{} is in use by {who}: one run writes a directory at a time; wait for it to \
                     finish, or choose another directory",
                    dir.display()
                ),
            ));
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error::file(&path, format!("cannot lock: {e}")));
        }
    }
    Ok(RunLock { _file: file })
}

/// The pid holding a `flock` on `file`, from `/proc/locks` (Linux; None elsewhere or when the
/// holder cannot be told): the line whose inode is the file's.
fn holder(file: &File) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let inode = file.metadata().ok()?.ino();
        let table = std::fs::read_to_string("/proc/locks").ok()?;
        holder_in(&table, inode)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

/// The pid of the FLOCK line of `table` (the `/proc/locks` format: `1: FLOCK ADVISORY WRITE
/// PID MAJ:MIN:INODE START END`) on `inode`.
fn holder_in(table: &str, inode: u64) -> Option<u32> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A blocked waiter's line starts "1: ->": the holder's does not.
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        if fields.get(1) == Some(&"->") {
            return None;
        }
        let pid = fields.get(at + 3)?.parse().ok()?;
        let ino = fields
            .get(at + 4)?
            .rsplit(':')
            .next()?
            .parse::<u64>()
            .ok()?;
        (ino == inode).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_holder_is_read_from_the_table_of_locks() {
        let table = "1: POSIX  ADVISORY  WRITE 77 08:01:555 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fd:00:123456 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 99 fd:00:123456 0 EOF\n";
        assert_eq!(super::holder_in(table, 123456), Some(4242));
        assert_eq!(super::holder_in(table, 555), None); // a POSIX lock is not ours
        assert_eq!(super::holder_in(table, 1), None);
    }
}
