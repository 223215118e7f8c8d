//! Putting a checkpoint's files in place without a crash ever losing one ([`install`], the
//! steps of [`SAVE_STEPS`], with the `RIMS_FAULT_SAVE` hook that tests use to stop a save at
//! each of them), and the run directory around it: leftovers of killed saves, the metrics
//! file, a new run's directory, a copied run.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::{
    Link, is_absent, read_regular, read_regular_string, sync_dir, write_atomic, write_synced,
};

use super::{
    FAULT_EXIT_CODE, LATEST_FILE, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, SAVE_STEPS, STATE_FILE,
    State, current, is_set_name, pointer, read_state,
};

/// The test hook described at [`SAVE_STEPS`].
struct Fault {
    step: usize,
    error: bool,
}

impl Fault {
    fn from_env() -> Result<Option<Fault>> {
        let Some(value) = std::env::var("RIMS_FAULT_SAVE")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        let (step, mode) = value.split_once(':').unwrap_or((&value, "exit"));
        match (step.parse::<usize>(), mode) {
            (Ok(step), "exit" | "error") if (1..=SAVE_STEPS.len()).contains(&step) => {
                Ok(Some(Fault {
                    step,
                    error: mode == "error",
                }))
            }
            _ => Err(Error::config(
                "RIMS_FAULT_SAVE",
                format!(
                    "'{value}' is not a step 1..={} of a save, optionally followed by :error",
                    SAVE_STEPS.len()
                ),
            )),
        }
    }

    fn after(fault: &Option<Fault>, step: usize) -> Result<()> {
        match fault {
            Some(f) if f.step == step && f.error => Err(Error::Io(std::io::Error::other(format!(
                "RIMS_FAULT_SAVE: injected failure after step {step} of a save ({})",
                SAVE_STEPS[step - 1]
            )))),
            Some(f) if f.step == step => {
                eprintln!(
                    "rims: RIMS_FAULT_SAVE: stopping after step {step} of a save ({})",
                    SAVE_STEPS[step - 1]
                );
                std::process::exit(FAULT_EXIT_CODE)
            }
            _ => Ok(()),
        }
    }
}

/// A set name for `epoch` that is not `previous` (the current set is never overwritten) and
/// that nothing in `dir` has: a new set never replaces an entry, ours or a user's.
fn fresh_name(epoch: usize, previous: Option<&str>, dir: &Path) -> String {
    let base = format!("epoch-{epoch:06}");
    (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|name| {
            Some(name.as_str()) != previous && std::fs::symlink_metadata(dir.join(name)).is_err()
        })
        .expect("an unused name")
}

/// File in each set this engine writes, holding the run's token: how cleaning tells this
/// run's leftover sets from a user's directory or a checkpoint copied in from another run,
/// which it keeps. A run's token is made when its first set is written and carried by every
/// later one (a copied or resumed run keeps it).
pub(super) const SET_MARK: &str = ".rims-set";

/// The token of the run in `dir`: the mark of its current set; before the run has one, the
/// mark its first save left in `dir` itself (None for a new run, or a set written before
/// marks existed).
fn run_token(dir: &Path) -> Option<String> {
    let set = current(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mark = read_regular_string(&set.join(SET_MARK), Link::Refuse).ok()?;
    let token = mark.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// A new run's token: 128 unpredictable bits.
fn new_token() -> String {
    format!(
        "{:016x}{:016x}",
        crate::io::unpredictable(),
        crate::io::unpredictable()
    )
}

/// A token for the run in `dir`, which has none yet. Before the first save (`first`), it is
/// also written to `DIR/.rims-set` until a set is current: a save killed after its set is in
/// place but before `latest` names it leaves a set that the next start recognises as this
/// directory's own (by the mark) and removes, rather than keeping it for ever as a stranger's.
fn new_token_for(dir: &Path, first: bool) -> Result<String> {
    let token = new_token();
    if first {
        let mark = dir.join(SET_MARK);
        // A file or link there that is no readable mark (a killed write) is ours by name and
        // replaced; a directory is somebody's, and never removed.
        match std::fs::symlink_metadata(&mark) {
            Ok(m) if m.is_dir() => {
                return Err(Error::file(
                    &mark,
                    "a directory stands where the run keeps its token: move it away",
                ));
            }
            Ok(_) => std::fs::remove_file(&mark).map_err(Error::io_on(&mark, "cannot remove"))?,
            Err(_) => {}
        }
        write_synced(&mark, token.as_bytes())?;
        sync_dir(dir)?;
    }
    Ok(token)
}

/// Whether `set` carries `token`, the mark of this run's sets.
fn is_ours(set: &Path, token: Option<&str>) -> bool {
    let Some(token) = token else { return false };
    matches!(read_regular_string(&set.join(SET_MARK), Link::Refuse), Ok(m) if m.trim() == token)
}

/// Removes a set of this run: first renamed to a temporary name (one atomic step), then
/// deleted, so a kill in the middle of the deletion leaves a temporary that the next start
/// removes, never a half-deleted set that no longer looks like the run's own.
fn remove_set(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    let doomed = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    remove_any(&doomed).map_err(Error::io_on(&doomed, "cannot remove"))?;
    match std::fs::rename(&path, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::file(&path, format!("cannot remove: {e}"))),
    }
    remove_any(&doomed).map_err(Error::io_on(&doomed, "cannot remove"))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the set of `files` (and `metrics`) the current checkpoint of `dir`: the steps of
/// [`SAVE_STEPS`] (whatever the three files are: a training run's, or a reinforcement-learning
/// run's with its own state file).
pub fn install(
    dir: &Path,
    epoch: usize,
    files: &[(&str, &[u8]); 3],
    metrics: Option<&str>,
) -> Result<()> {
    let fault = Fault::from_env()?;
    std::fs::create_dir_all(dir).map_err(Error::io_on(dir, "cannot create the directory"))?;
    let previous = pointer(dir)?;
    let name = fresh_name(epoch, previous.as_deref(), dir);
    let token = match run_token(dir) {
        Some(token) => token,
        None => new_token_for(dir, previous.is_none())?,
    };
    let set = dir.join(&name);
    let pid = std::process::id();
    let tmp = dir.join(format!(".{name}.tmp-{pid}"));
    let pointer_tmp = dir.join(format!(".{LATEST_FILE}.tmp-{pid}"));
    let mut renamed = false;
    let result = (|| -> Result<()> {
        remove_any(&tmp).map_err(Error::io_on(&tmp, "cannot remove"))?;
        std::fs::create_dir(&tmp).map_err(Error::io_on(&tmp, "cannot create the directory"))?;
        write_synced(&tmp.join(SET_MARK), token.as_bytes())?;
        Fault::after(&fault, 1)?;
        for (i, (file, bytes)) in files.iter().enumerate() {
            write_synced(&tmp.join(file), bytes)?;
            Fault::after(&fault, 2 + i)?;
        }
        if let Some(text) = metrics {
            write_synced(&tmp.join(METRICS_FILE), text.as_bytes())?;
        }
        Fault::after(&fault, 5)?;
        sync_dir(&tmp)?;
        // The name is fresh (nothing had it): the rename replaces nothing.
        std::fs::rename(&tmp, &set).map_err(Error::io_on(&set, "cannot rename into place"))?;
        renamed = true;
        sync_dir(dir)?;
        Fault::after(&fault, 6)?;
        // Whatever stands at the pointer's temporary name (a killed save's) goes first: the
        // new one is created exclusively.
        remove_any(&pointer_tmp).map_err(Error::io_on(&pointer_tmp, "cannot remove"))?;
        write_synced(&pointer_tmp, format!("{name}\n").as_bytes())?;
        Fault::after(&fault, 7)?;
        let latest = dir.join(LATEST_FILE);
        std::fs::rename(&pointer_tmp, &latest)
            .map_err(Error::io_on(&latest, "cannot rename into place"))?;
        sync_dir(dir)?;
        Fault::after(&fault, 8)
    })();
    if result.is_err() && pointer(dir).ok().flatten().as_deref() != Some(name.as_str()) {
        // Not switched: nothing of this save may stay behind.
        let _ = remove_any(&tmp);
        let _ = remove_any(&pointer_tmp);
        if renamed {
            let _ = remove_set(dir, &name);
        }
    }
    result?;
    // The set `latest` named until now is this run's, marked or not (older runs wrote none).
    if let Some(prev) = previous.as_deref().filter(|p| *p != name) {
        remove_set(dir, prev)?;
    }
    remove_leftovers(dir)?;
    Fault::after(&fault, 9)?;
    if let Some(text) = metrics {
        publish_metrics(dir, text)?;
    }
    Fault::after(&fault, 10)
}

/// `Some(pid)` for the name of a temporary file or directory this module (`.NAME.tmp-PID`) or
/// [`crate::io::write_atomic`] on one of its files (`.NAME.tmp-PID-RANDOM`) creates.
fn temporary(name: &str) -> Option<u32> {
    let (base, tail) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    let pid = match tail.split_once('-') {
        Some((pid, random))
            if random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            pid
        }
        Some(_) => return None,
        None => tail,
    };
    let ours = [
        MODEL_FILE,
        OPTIMIZER_FILE,
        STATE_FILE,
        METRICS_FILE,
        LATEST_FILE,
    ]
    .contains(&base)
        || is_set_name(base);
    if ours { pid.parse().ok() } else { None }
}

/// Whether another live process has this id (then its temporaries are still being written).
fn alive_elsewhere(pid: u32) -> bool {
    pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes what killed saves left in `dir`: temporaries, sets of this run that never became
/// current (a set without this directory's mark, a user's or another run's, is kept), and the
/// files of the older layout once a set has replaced them.
fn remove_leftovers(dir: &Path) -> Result<()> {
    let current = pointer(dir)?;
    let token = run_token(dir);
    let entries = std::fs::read_dir(dir).map_err(Error::io_on(dir, "cannot list"))?;
    for entry in entries {
        let entry = entry.map_err(Error::io_on(dir, "cannot list"))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let stale = match temporary(&name) {
            Some(pid) => !alive_elsewhere(pid),
            None => {
                is_set_name(&name)
                    && current.as_deref() != Some(name.as_str())
                    && is_ours(&entry.path(), token.as_deref())
            }
        };
        if stale && temporary(&name).is_some() {
            let path = entry.path();
            remove_any(&path).map_err(Error::io_on(&path, "cannot remove a leftover of a save"))?;
        } else if stale {
            remove_set(dir, &name)?;
        }
    }
    if current.is_some() {
        for file in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
            let path = dir.join(file);
            remove_any(&path).map_err(Error::io_on(&path, "cannot remove"))?;
        }
        // The first save's token in the directory itself (the current set carries it now); a
        // directory of that name is not ours and stays.
        let mark = dir.join(SET_MARK);
        if std::fs::symlink_metadata(&mark).is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&mark).map_err(Error::io_on(&mark, "cannot remove"))?;
        }
    }
    Ok(())
}

/// The evaluation records the current checkpoint of `dir` vouches for (`metrics.jsonl` text):
/// its own copy, or, for a checkpoint without one (older layout), the records of
/// `DIR/metrics.jsonl` up to its epoch, each epoch once (the last one written).
pub fn read_metrics(dir: &Path) -> Result<String> {
    let set = current(dir)?;
    let copy = set.join(METRICS_FILE);
    if set != dir && std::fs::symlink_metadata(&copy).is_ok() {
        let text = read_regular_string(&copy, Link::Refuse)?;
        // Every record must be whole before anything is rewritten from it: a corrupt copy
        // would otherwise replace the good DIR/metrics.jsonl.
        if text.trim().is_empty() {
        } else if set.join(super::RL_STATE_FILE).is_file() {
            // A reinforcement-learning run's records (`rims::rl::train::UpdateRecord`, a layer
            // above): each line must be a whole JSON object.
            for (i, line) in text.lines().enumerate() {
                if !serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()) {
                    return Err(Error::file(
                        &copy,
                        format!("line {} is not a whole JSON record", i + 1),
                    ));
                }
            }
        } else {
            crate::train::parse_records(&text, &copy)?;
        }
        return Ok(text);
    }
    let epoch = read_state(dir)?.progress.epoch as u64;
    let path = dir.join(METRICS_FILE);
    let text = if is_absent(&path) {
        String::new()
    } else {
        read_regular_string(&path, Link::Refuse)?
    };
    let mut by_epoch = BTreeMap::new();
    for line in text.lines() {
        // A line cut short by a crash has no epoch and is dropped with the rest of its kind.
        let e = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()));
        if let Some(e) = e.filter(|&e| e <= epoch) {
            by_epoch.insert(e, line);
        }
    }
    Ok(by_epoch.values().map(|l| format!("{l}\n")).collect())
}

/// Makes `DIR/metrics.jsonl` hold exactly `text`: appended to when it holds the beginning of
/// it (the usual case, kind to `tail -f`), rewritten in one rename otherwise.
pub fn publish_metrics(dir: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let path = dir.join(METRICS_FILE);
    let have = if is_absent(&path) {
        Vec::new()
    } else {
        read_regular(&path, Link::Refuse)?
    };
    if have == text.as_bytes() {
        return Ok(());
    }
    let prefix = text.as_bytes().starts_with(&have) && (have.is_empty() || have.ends_with(b"\n"));
    if !prefix {
        return write_atomic(&path, text.as_bytes());
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        // Checked a regular file above; a link swapped in since is not followed.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let mut f = options
        .open(&path)
        .map_err(Error::io_on(&path, "cannot open"))?;
    f.write_all(&text.as_bytes()[have.len()..])
        .map_err(Error::io_on(&path, "cannot write"))?;
    f.sync_all().map_err(Error::io_on(&path, "cannot flush"))
}

/// Files in a directory with no checkpoint that say another run used it.
fn foreign_files(dir: &Path) -> Vec<&'static str> {
    [METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE]
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect()
}

/// Gets the run directory `dir` ready for a run that writes into it, and returns the records
/// its checkpoint vouches for ("" for a new run). A new run (`resume` false) refuses a
/// directory that holds another run's checkpoint or records; a resumed one needs a checkpoint
/// there. Either way, what killed saves left behind is removed, and a resumed run's
/// `metrics.jsonl` is made to match its checkpoint.
pub fn open_run(dir: &Path, resume: bool) -> Result<String> {
    if resume {
        let metrics = read_metrics(dir)?;
        remove_leftovers(dir)?;
        publish_metrics(dir, &metrics)?;
        return Ok(metrics);
    }
    if dir.join(LATEST_FILE).exists() || dir.join(STATE_FILE).exists() {
        return Err(Error::config(
            "out",
            format!(
                "{} already holds a checkpoint: pass --resume to continue it, or choose another --out",
                dir.display()
            ),
        ));
    }
    let foreign = foreign_files(dir);
    if !foreign.is_empty() {
        return Err(Error::config(
            "out",
            format!(
                "{} holds {} of another run but no checkpoint: remove them or choose another --out",
                dir.display(),
                foreign.join(", ")
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(Error::io_on(dir, "cannot create the directory"))?;
    remove_leftovers(dir)?;
    Ok(String::new())
}

/// Starts the run directory `to` as a copy of the run in `from` (its current checkpoint and the
/// records it vouches for), so that training continues there and `from` stays as it is. `to`
/// must not hold a run already.
pub fn copy_run(from: &Path, to: &Path) -> Result<State> {
    let set = current(from)?;
    let state = read_state(from)?;
    let metrics = read_metrics(from)?;
    let read = |file: &str| read_regular(&set.join(file), Link::Refuse);
    let (model, optimizer, json) = (read(MODEL_FILE)?, read(OPTIMIZER_FILE)?, read(STATE_FILE)?);
    let _lock = super::lock_run(to)?;
    open_run(to, false)?;
    let files = [
        (MODEL_FILE, model.as_slice()),
        (OPTIMIZER_FILE, optimizer.as_slice()),
        (STATE_FILE, json.as_slice()),
    ];
    install(to, state.progress.epoch, &files, Some(&metrics))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names() {
        let dir = std::env::temp_dir().join(format!("rims-fresh-names-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("epoch-000005")).unwrap();
        assert_eq!(fresh_name(4, None, &dir), "epoch-000004");
        assert_eq!(fresh_name(4, Some("epoch-000004"), &dir), "epoch-000004-2");
        assert_eq!(fresh_name(4, Some("epoch-000003"), &dir), "epoch-000004");
        assert_eq!(
            fresh_name(5, None, &dir),
            "epoch-000005-2",
            "an entry is never replaced"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn temporaries_are_recognised() {
        assert_eq!(temporary(".epoch-000002.tmp-123"), Some(123));
        assert_eq!(temporary(".model.safetensors.tmp-9"), Some(9));
        assert_eq!(temporary(".latest.tmp-77"), Some(77));
        let written = crate::io::temporary_name("metrics.jsonl");
        let pid = std::process::id();
        assert!(
            written.starts_with(&format!(".metrics.jsonl.tmp-{pid}-")),
            "{written}"
        );
        assert_eq!(temporary(&written), Some(pid));
        assert_eq!(temporary(".metrics.jsonl.tmp-12-zz"), None);
        assert!(crate::io::temporary_name(&"n".repeat(250)).len() < 100);
        assert_eq!(temporary(".bashrc"), None);
        assert_eq!(temporary(".notes.tmp-12"), None, "not one of ours");
        assert_eq!(temporary("model.safetensors.tmp-12"), None);
    }
}
