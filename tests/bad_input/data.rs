//! `rims data balls` against bad settings and outputs it must not write: every case is one
//! line naming the flag or file, and nothing that existed changes.

use super::*;

/// `rims data balls --out OUT` with small `--sequences` and `--length` unless `extra` names them,
/// then `extra`.
fn balls(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["data", "balls", "--out", s(out)]
        .iter()
        .map(|x| x.to_string())
        .collect();
    for (flag, value) in [("--sequences", "2"), ("--length", "3")] {
        if !extra.contains(&flag) {
            a.extend([flag.to_string(), value.to_string()]);
        }
    }
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let out = fixture().scratch.join("balls-never.safetensors");
    let bad = |extra: &[&str], code, needle| case(&balls(&out, extra), code, needle);
    let cases = [
        bad(
            &["--balls", "0"],
            1,
            "balls: 0 is not a count or range within 1-32",
        ),
        bad(&["--balls", "8-6"], 1, "balls: 8-6 is not a count or range"),
        bad(&["--balls", "33"], 1, "within 1-32"),
        bad(
            &["--balls", "six"],
            1,
            "balls: 'six' is neither a number nor a range",
        ),
        bad(&["--balls", "30"], 1, "cannot place 30 balls"),
        bad(
            &["--radius", "0.45", "--balls", "2"],
            1,
            "cannot place 2 balls",
        ),
        bad(&["--radius", "0.5"], 1, "radius"),
        bad(&["--radius", "nan"], 1, "radius"),
        bad(&["--speed", "-1"], 1, "speed"),
        bad(&["--substeps", "1"], 1, "raise substeps"),
        bad(&["--substeps", "0"], 1, "substeps"),
        bad(&["--size", "0"], 1, "size: 0 is outside"),
        bad(&["--length", "0"], 1, "length: 0 is outside"),
        bad(&["--sequences", "0"], 1, "sequences: must be at least 1"),
        bad(&["--sequences", "many"], 2, "'--sequences <SEQUENCES>'"),
        bad(&["--mass", "heavy"], 2, "'--mass <MASS>'"),
        case(
            &["data", "balls", "--sequences", "1", "--length", "1"],
            2,
            "required arguments",
        ),
        case(&["data", "cubes"], 2, "unrecognized subcommand"),
    ];
    check(&cases, &[]);
    assert!(!out.exists(), "a refused request wrote {out:?}");
}

#[cfg(unix)]
#[test]
fn outputs_it_must_not_write_are_refused() {
    let f = fixture();
    let here = f.scratch.join("balls-outputs");
    let _ = std::fs::remove_dir_all(&here);
    std::fs::create_dir_all(&here).unwrap();
    let victim = here.join("victim.txt");
    std::fs::write(&victim, "the user's file").unwrap();
    let link = here.join("link.safetensors");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let in_run = f.run.join("balls.safetensors");
    let deep_in_run = f.run.join("new").join("balls.safetensors");
    let cases = [
        case(&balls(&link, &[]), 1, "symbolic link"),
        case(&balls(&here, &[]), 1, "a directory"),
        case(&balls(&in_run, &[]), 1, "lies inside the run directory"),
        case(
            &balls(&deep_in_run, &[]),
            1,
            "lies inside the run directory",
        ),
    ];
    check(&cases, &[&here]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "the user's file");
    assert!(!in_run.exists() && !deep_in_run.exists());
}
