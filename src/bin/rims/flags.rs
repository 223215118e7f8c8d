//! Errors in the words of the command line: the library names config fields (`input`,
//! `train_len`, `batch_size`), the user typed flags (`--embed`, `--train-len`, `--batch`).

use rims::Error;
use rims::train::TrainConfig;

/// The `rims train` flag that sets config field `field`, if one does.
pub fn train_flag(field: &str) -> Option<&'static str> {
    Some(match field {
        "task" => "--task",
        "model" => "--model",
        "preset" => "--preset",
        "cell" => "--cell",
        "mechanisms" => "--mechanisms",
        "active" => "--active",
        "hidden" => "--hidden",
        // RimsConfig calls the embedding size the cell's input.
        "embed" | "input" => "--embed",
        "lr" => "--lr",
        "lr_schedule" => "--lr-schedule",
        "input_gain" => "--input-gain",
        "clip" => "--clip",
        "dropout" => "--dropout",
        "batch" | "batch_size" => "--batch",
        "epochs" => "--epochs",
        "iterations" => "--iterations",
        "forget_bias" => "--forget-bias",
        "eval_every" => "--eval-every",
        "symbols" => "--symbols",
        "train_len" => "--train-len",
        "test_len" => "--test-len",
        // The copying task's gap, from either of the two.
        "t" => "--train-len/--test-len",
        "carry_state" => "--carry/--no-carry",
        "resolution" => "--resolution",
        "limit" => "--limit",
        "mnist_dir" => "--mnist-dir",
        "seed" => "--seed",
        "out" => "--out",
        "resume" => "--resume",
        _ => return None,
    })
}

/// The `rims eval` flag that overrides config field `field`, if one does.
pub fn eval_flag(field: &str) -> Option<&'static str> {
    Some(match field {
        "train_len" | "test_len" | "t" | "lengths" => "--lengths",
        "resolution" | "eval_resolutions" | "resolutions" => "--resolutions",
        "task" => "--task",
        _ => return None,
    })
}

/// `e` with its config field replaced by the flag `flag_of` gives for it (other errors, and
/// fields no flag sets, unchanged).
pub fn name_flag(e: Error, flag_of: fn(&str) -> Option<&'static str>) -> Error {
    match e {
        Error::Config { field, reason } => Error::Config {
            field: flag_of(field).unwrap_or(field),
            reason,
        },
        other => other,
    }
}

/// A config value as the user would write it (the config's reals are f32: 0.005, not the
/// f64 0.004999999888241291 JSON values hold).
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if (x as f32) as f64 == x {
                (x as f32).to_string()
            } else {
                x.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// Where `asked` (the checkpoint's config with the flags given applied) differs from `saved`
/// (the checkpoint's), as "--flag: X given, the checkpoint has Y"; the number of epochs may
/// differ (that is how a run is extended).
pub fn differences(asked: &TrainConfig, saved: &TrainConfig) -> Vec<String> {
    asked
        .differing_fields(saved)
        .into_iter()
        .map(|(k, v, had)| {
            format!(
                "{}: {} given, the checkpoint has {}",
                train_flag(&k).unwrap_or(k.as_str()),
                shown(&v),
                shown(&had)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_flags() {
        let e = name_flag(
            Error::Config {
                field: "input",
                reason: "must be at least 1".into(),
            },
            train_flag,
        );
        assert_eq!(e.to_string(), "invalid config: --embed: must be at least 1");
        let e = name_flag(
            Error::Config {
                field: "input_key",
                reason: "x".into(),
            },
            train_flag,
        );
        assert!(e.to_string().contains("input_key"), "{e}");
    }

    #[test]
    fn differences_read_the_right_way_round() {
        let saved = TrainConfig::default();
        let asked = TrainConfig {
            hidden: saved.hidden + 1,
            epochs: saved.epochs + 5,
            clip: None,
            ..saved.clone()
        };
        let d = differences(&asked, &saved);
        assert_eq!(
            d,
            vec![
                "--clip: none given, the checkpoint has 1".to_string(),
                format!(
                    "--hidden: {} given, the checkpoint has {}",
                    saved.hidden + 1,
                    saved.hidden
                ),
            ]
        );
    }
}
