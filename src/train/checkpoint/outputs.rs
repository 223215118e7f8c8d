//! Where a command may write: a run directory holds only what its own run writes, so an output
//! (a picture, an export, inference results, a benchmark report, a new run) is refused inside
//! any run directory, and an output is never one of the files the command reads. Both checks
//! follow the path as the write would (links, `..`, `./`), so no spelling of a run's file gets
//! past them, and the second compares device and inode, so a hard link does not either.

use std::path::{Path, PathBuf};

use super::{LATEST_FILE, LOCK_FILE, STATE_FILE, files::SET_MARK};
use crate::error::{Error, Result};

/// Whether `dir` is a run directory or one of its checkpoint sets: it holds `latest`, the
/// run's lock file, a `train.json` (a checkpoint, or a run of the older layout) or a set's mark.
fn is_run_dir(dir: &Path) -> bool {
    [LATEST_FILE, LOCK_FILE, STATE_FILE, SET_MARK]
        .iter()
        .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok())
}

/// The run directory that `path` lies in, `path` itself not counted: the nearest of its
/// existing ancestors, after following links, that [`is_run_dir`].
fn enclosing_run(path: &Path) -> Option<PathBuf> {
    let mut dir = crate::io::parent_dir(path);
    // The deepest ancestor that exists: a new output may be several directories deep, and a
    // relative path none of whose directories exist yet lies in the working directory.
    while std::fs::metadata(dir).is_err() {
        let up = crate::io::parent_dir(dir);
        if up == dir {
            return None; // not even the working directory exists
        }
        dir = up;
    }
    let dir = dir.canonicalize().ok()?;
    dir.ancestors()
        .find(|d| is_run_dir(d))
        .map(Path::to_path_buf)
}

/// Refuses a new run directory `dir` (`--out` of `rims train` or `rims import`) inside another
/// run directory: that run's files and cleaning are its own.
pub fn check_run_place(dir: &Path) -> Result<()> {
    match enclosing_run(dir) {
        None => Ok(()),
        Some(run) => Err(Error::config(
            "out",
            format!(
                "{} lies inside the run directory {}, which holds only what its own run writes: \
                 choose a directory outside it",
                dir.display(),
                run.display()
            ),
        )),
    }
}

/// Refuses an output file `out` (a command's `--out`) that [`crate::io::write_atomic`] would
/// not replace (a link, a device, ...), that lies inside a run directory, or that is (same
/// device and inode) one of the files of `inputs`: input files, or run directories whose files
/// and checkpoint sets count.
pub fn check_output(out: &Path, inputs: &[&Path]) -> Result<()> {
    crate::io::check_replaceable(out)?;
    if let Some(run) = enclosing_run(out) {
        return Err(Error::config(
            "--out",
            format!(
                "{} lies inside the run directory {}, which holds only what its own run writes: \
                 write it outside the run",
                out.display(),
                run.display()
            ),
        ));
    }
    let Some(target) = identity(out) else {
        return Ok(()); // a new file
    };
    for input in inputs {
        if let Some(same) = input_files(input)
            .into_iter()
            .find(|f| identity(f) == Some(target))
        {
            return Err(Error::config(
                "--out",
                format!(
                    "{} is the same file as {}, which this command reads: choose another path",
                    out.display(),
                    same.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Device and inode of what `path` names, links followed.
fn identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        // Without inodes, the canonical path stands for the file.
        path.canonicalize().ok().map(|p| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            (0, h.finish())
        })
    }
}

/// `input` itself, and when it is a directory, its files and those of its subdirectories (a
/// run's checkpoint sets): two levels, links inside not followed.
fn input_files(input: &Path) -> Vec<PathBuf> {
    let mut files = vec![input.to_path_buf()];
    let mut dirs = vec![(input.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && depth < 1 {
                dirs.push((e.path(), depth + 1));
            } else if !is_dir {
                files.push(e.path());
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_several_missing_directories_deep_in_a_run_is_refused() {
        let root = std::env::temp_dir().join(format!("rims-outputs-{}", std::process::id()));
        let run = root.join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(LATEST_FILE), "epoch-000001\n").unwrap();
        let deep = run.join("new").join("deeper").join("out.png");
        let e = check_output(&deep, &[]).unwrap_err().to_string();
        assert!(e.contains("lies inside the run directory"), "{e}");
        assert!(check_run_place(&run.join("a").join("b")).is_err());
        // Beside the run is fine, and so is the run itself as a place for its own run.
        assert!(check_output(&root.join("out.png"), &[&run]).is_ok());
        assert!(check_run_place(&run).is_ok());
        let _ = std::fs::remove_dir_all(&root);
    }
}
