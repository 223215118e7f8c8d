//! `rims summary DIR...`: the final evaluation of several runs as one table, seeds pooled.
//!
//! Runs whose directory names differ only in a trailing seed tag (`-s1`, `-s2`, `-seed7`) are
//! one configuration; each row gives mean ± standard deviation (n − 1) over its seeds of the
//! last evaluation's loss and accuracy at every evaluated size. This is how the tables of
//! docs/experiments.md are made from the run directories of `tools/experiments.sh`.
//!
//! A row is only as good as its pooling, so what would make it lie is refused: runs of one name
//! whose settings differ beyond the seed (a copying and an adding run), one run given twice
//! (under any spelling of its path), two runs of one seed, a name that is nothing but a seed
//! tag, and a path that does not exist. Files among the paths (a glob's logs) are skipped with a
//! note.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use rims::train::{self, EvalRecord, TrainConfig, checkpoint};
use rims::{Error, Result};

use crate::flags::shown;

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Run directories (from `rims train --out`), each with train.json and metrics.jsonl.
    #[arg(required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Only this split's columns (e.g. test; default: every split evaluated).
    #[arg(long)]
    split: Option<String>,
}

/// One finished (or interrupted) run.
struct Run {
    dir: PathBuf,
    group: String,
    config: TrainConfig,
    params: usize,
    steps: u64,
    seconds: f64,
    last: EvalRecord,
}

/// The directory name without a trailing seed tag: `copy-rims-s2` → `copy-rims` (`.` and
/// `..` stand for the directory they name).
pub fn group_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    for tag in ["-seed", "-s"] {
        if let Some(i) = name.rfind(tag) {
            let digits = &name[i + tag.len()..];
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return name[..i].to_string();
            }
        }
    }
    name
}

fn read_run(dir: &Path) -> Result<Run> {
    let state = checkpoint::read_state(dir)?;
    // The records the checkpoint vouches for (an interrupted save leaves none extra).
    let path = dir.join(checkpoint::METRICS_FILE);
    let records = train::parse_records(&checkpoint::read_metrics(dir)?, &path)?;
    let Some(last) = records.into_iter().last() else {
        return Err(Error::file(path, "no evaluation recorded yet"));
    };
    let params = state
        .config
        .model()?
        .param_specs()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let group = group_name(dir);
    if group.is_empty() {
        return Err(Error::file(
            dir,
            "its name is only a seed tag: name run directories NAME-sSEED, e.g. copy-rims-s1",
        ));
    }
    Ok(Run {
        dir: dir.to_path_buf(),
        config: state.config,
        group,
        params,
        steps: state.progress.step,
        seconds: state.progress.seconds,
        last,
    })
}

/// "mean ± std" of `v` (just the mean for one value).
fn mean_std(v: &[f64], digits: usize) -> String {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return format!("{mean:.digits$}");
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    format!("{mean:.digits$} ± {:.digits$}", var.sqrt())
}

/// Refuses a group that would pool what is not seeds of one configuration.
fn check_group(name: &str, members: &[&Run]) -> Result<()> {
    let first = members[0];
    for (i, r) in members.iter().enumerate().skip(1) {
        // Seeds of one configuration differ in the seed, where the data was read from, and
        // how far they ran (the steps column shows that).
        let differ: Vec<String> = first
            .config
            .differing_fields(&r.config)
            .into_iter()
            .filter(|(k, _, _)| !["seed", "mnist_dir"].contains(&k.as_str()))
            .map(|(k, v, other)| format!("{k} {} vs {}", shown(&v), shown(&other)))
            .collect();
        if !differ.is_empty() {
            return Err(Error::config(
                "runs",
                format!(
                    "{} and {} share the name '{name}' but not their settings ({}): seeds of one \
                     configuration differ only in --seed; rename one",
                    first.dir.display(),
                    r.dir.display(),
                    differ.join(", ")
                ),
            ));
        }
        let seed = r.config.seed;
        if let Some(twin) = members[..i].iter().find(|m| m.config.seed == seed) {
            return Err(Error::config(
                "runs",
                format!(
                    "{} and {} are both seed {} of '{name}': a row pools different seeds",
                    twin.dir.display(),
                    r.dir.display(),
                    seed
                ),
            ));
        }
    }
    Ok(())
}

/// The run directories among `paths`, each once: a missing path is an error, a file (a log a
/// glob matched) is skipped with a note, and one directory given twice is refused.
fn run_dirs(paths: &[PathBuf]) -> Result<Vec<&PathBuf>> {
    if let Some(missing) = paths.iter().find(|p| std::fs::metadata(p).is_err()) {
        return Err(Error::file(missing, "does not exist"));
    }
    // A shell glob over a runs folder also matches its files (logs): they are no runs.
    let (dirs, files): (Vec<&PathBuf>, Vec<&PathBuf>) = paths.iter().partition(|p| p.is_dir());
    if !files.is_empty() {
        eprintln!(
            "rims summary: skipped {} path(s) that are files, not run directories, e.g. {}",
            files.len(),
            files[0].display()
        );
    }
    let mut seen: Vec<(PathBuf, &PathBuf)> = Vec::new();
    for d in &dirs {
        let real = d
            .canonicalize()
            .map_err(Error::io_on(d, "cannot resolve"))?;
        if let Some((_, first)) = seen.iter().find(|(r, _)| *r == real) {
            return Err(Error::config(
                "runs",
                format!(
                    "{} and {} are the same run directory: each run counts once",
                    first.display(),
                    d.display()
                ),
            ));
        }
        seen.push((real, d));
    }
    Ok(dirs)
}

pub fn run_summary(args: &SummaryArgs) -> Result<()> {
    let dirs = run_dirs(&args.runs)?;
    if dirs.is_empty() {
        return Err(Error::config(
            "runs",
            "none of the paths is a run directory",
        ));
    }
    let runs: Vec<Run> = dirs.iter().map(|d| read_run(d)).collect::<Result<_>>()?;
    // Columns: every (split, size) any run evaluated, in first-seen order.
    let mut columns: Vec<(String, usize)> = Vec::new();
    for r in &runs {
        for e in &r.last.eval {
            if args.split.as_ref().is_some_and(|s| *s != e.split) {
                continue;
            }
            let key = (e.split.clone(), e.size);
            if !columns.contains(&key) {
                columns.push(key);
            }
        }
    }
    if columns.is_empty() {
        return Err(Error::config(
            "split",
            format!(
                "no run has evaluated a split named '{}'",
                args.split.as_deref().unwrap_or_default()
            ),
        ));
    }
    let mut groups: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for r in &runs {
        groups.entry(&r.group).or_default().push(r);
    }
    for (name, members) in &groups {
        check_group(name, members)?;
    }
    let head: Vec<String> = columns
        .iter()
        .flat_map(|(split, size)| {
            [
                format!("{split}@{size} loss"),
                format!("{split}@{size} acc (%)"),
            ]
        })
        .collect();
    println!(
        "| run | seeds | params | steps | minutes | {} |",
        head.join(" | ")
    );
    println!("|---|---|---|---|---|{}", "---|".repeat(head.len()));
    for (name, members) in groups {
        let mut cells = Vec::new();
        for (split, size) in &columns {
            let found: Vec<_> = members
                .iter()
                .filter_map(|r| {
                    r.last
                        .eval
                        .iter()
                        .find(|e| &e.split == split && e.size == *size)
                })
                .collect();
            if found.is_empty() {
                cells.extend(["-".to_string(), "-".to_string()]);
                continue;
            }
            let loss: Vec<f64> = found.iter().map(|e| e.loss).collect();
            let acc: Vec<f64> = found.iter().map(|e| 100.0 * e.accuracy).collect();
            cells.push(mean_std(&loss, 3));
            cells.push(mean_std(&acc, 1));
        }
        let steps: Vec<f64> = members.iter().map(|r| r.steps as f64).collect();
        let minutes: Vec<f64> = members.iter().map(|r| r.seconds / 60.0).collect();
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            members.len(),
            members[0].params,
            mean_std(&steps, 0),
            mean_std(&minutes, 1),
            cells.join(" | ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_tags_are_pooled_and_other_names_kept() {
        assert_eq!(group_name(Path::new("runs/copy-rims-s2")), "copy-rims");
        assert_eq!(group_name(Path::new("copy-lstm-seed13")), "copy-lstm");
        assert_eq!(group_name(Path::new("smnist-k4")), "smnist-k4");
        assert_eq!(
            group_name(Path::new("runs/s3")),
            "runs/s3".rsplit('/').next().unwrap()
        );
        assert_eq!(mean_std(&[1.0, 3.0], 1), "2.0 ± 1.4");
        assert_eq!(mean_std(&[0.5], 2), "0.50");
    }
}
