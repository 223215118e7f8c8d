//! `rims summary DIR...`: the final evaluation of several runs as one table, seeds pooled.
//!
//! Runs whose directory names differ only in a trailing seed tag (`-s1`, `-s2`, `-seed7`) are
//! one configuration; each row gives mean ± standard deviation (n − 1) over its seeds of the
//! last evaluation's loss and accuracy at every evaluated size. This is how the tables of
//! docs/experiments.md are made from the run directories of `tools/experiments.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use rims::train::{self, EvalRecord, checkpoint};
use rims::{Error, Result};

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
    group: String,
    params: usize,
    steps: u64,
    seconds: f64,
    last: EvalRecord,
}

/// The directory name without a trailing seed tag: `copy-rims-s2` → `copy-rims`.
pub fn group_name(dir: &Path) -> String {
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
    Ok(Run {
        group: group_name(dir),
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

pub fn run_summary(args: &SummaryArgs) -> Result<()> {
    // A shell glob over a runs folder also matches its files (logs): they are no runs.
    let (dirs, files): (Vec<&PathBuf>, Vec<&PathBuf>) = args.runs.iter().partition(|p| p.is_dir());
    if !files.is_empty() {
        eprintln!(
            "rims summary: skipped {} path(s) that are not directories, e.g. {}",
            files.len(),
            files[0].display()
        );
    }
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
