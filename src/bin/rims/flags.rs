//! The command line's words for the library's: the choices of `--model`, `--cell`,
//! `--variant` and `--preset` (clap parses them; the config holds their names), and errors
//! that name the flag the user typed (`--embed`, `--train-len`, `--batch`) where the library
//! names a config field (`input`, `train_len`, `batch_size`).

use clap::ValueEnum;
use rims::Error;
use rims::nn::Variant;
use rims::train::TrainConfig;
use serde::Serialize;

/// `--model`: the backbone. Serialised as the name `TrainConfig::model` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelArg {
    /// Recurrent Independent Mechanisms: N mechanisms of H units, k active per step.
    Rims,
    /// A dense LSTM baseline of --hidden units.
    Lstm,
    /// A dense GRU baseline of --hidden units.
    Gru,
}

/// `--cell`: the mechanisms' cell. Serialised as the name `TrainConfig::cell` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CellArg {
    Lstm,
    Gru,
}

/// `--variant`: whose RIMs cell. Serialised as the name `TrainConfig::variant` holds, the
/// library's `Variant::name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VariantArg {
    /// The authors' BlocksCore (anirudh9119/RIMs; docs/spec.md §1).
    Authors,
    /// dido1998's RIMCell (docs/spec.md §3).
    Dido,
}

impl VariantArg {
    /// The library's variant.
    pub fn variant(self) -> Variant {
        match self {
            VariantArg::Authors => Variant::Authors,
            VariantArg::Dido => Variant::Dido,
        }
    }
}

impl Serialize for VariantArg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.variant().name())
    }
}

/// The parser of every real-valued train flag: a NaN or an infinity is refused as a usage
/// error (as `verify --tolerance` does) rather than passed on, because no setting means it and
/// JSON, through which the flags reach the config, cannot hold it.
pub fn finite(text: &str) -> Result<f32, String> {
    let x: f32 = text.parse().map_err(|e| format!("{e}"))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("{x} is not a finite number"))
    }
}

/// The parser of `--frame-channels`: three positive widths, `c1,c2,c3`.
pub fn channels(text: &str) -> Result<[usize; 3], String> {
    let widths: Vec<usize> = text
        .split(',')
        .map(|w| w.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e} (three widths: c1,c2,c3)"))?;
    match widths[..] {
        [a, b, c] if a > 0 && b > 0 && c > 0 => Ok([a, b, c]),
        _ => Err(format!("{text} is not three positive widths c1,c2,c3")),
    }
}

/// `--preset`: the starting point of a new run.
pub use rims::train::config::new_run::Preset;

/// The `rims train` flag that sets config field `field`, if one does.
pub fn train_flag(field: &str) -> Option<&'static str> {
    Some(match field {
        "task" => "--task",
        "model" => "--model",
        "preset" => "--preset",
        "cell" => "--cell",
        "mechanisms" => "--mechanisms",
        "active" => "--active",
        // H: per mechanism for RIMs, the whole layer for a dense model (see `hidden_flag`).
        "hidden" => "--hidden (H, units per mechanism)",
        // RimsConfig calls the embedding size the cell's input.
        "embed" | "input" => "--embed",
        "variant" => "--variant",
        "input_heads" => "--input-heads",
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
        "balls" => "--balls",
        "frame_size" => "--frame-size",
        "channels" | "frame_channels" => "--frame-channels",
        "dense" | "frame_dense" => "--frame-dense",
        "seed" => "--seed",
        "out" => "--out",
        "resume" => "--resume",
        "init" => "--init",
        _ => return None,
    })
}

/// [`train_flag`] for a dense baseline, whose --hidden is the number of units of its one layer.
pub fn dense_train_flag(field: &str) -> Option<&'static str> {
    match field {
        "hidden" => Some("--hidden (units of the dense layer)"),
        other => train_flag(other),
    }
}

/// The flag names of a run of `model` ("rims", "lstm" or "gru").
pub fn train_flags(model: &str) -> fn(&str) -> Option<&'static str> {
    if model == "rims" {
        train_flag
    } else {
        dense_train_flag
    }
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
        Error::Config { field, reason } => Error::config(flag_of(field).unwrap_or(field), reason),
        other => other,
    }
}

/// A config value as the user would write it (the config's reals are f32: 0.005, not the
/// f64 0.004999999888241291 JSON values hold).
pub fn shown(v: &serde_json::Value) -> String {
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
                train_flags(&saved.model)(&k).unwrap_or(k.as_str()),
                shown(&v),
                shown(&had)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What clap reads and what serde writes into the config must be the same word.
    fn names_agree<T: ValueEnum + Serialize>() {
        for v in T::value_variants() {
            let clap_name = v.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(serde_json::to_value(v).unwrap(), clap_name);
        }
    }

    #[test]
    fn choices_are_stored_under_their_command_line_names() {
        names_agree::<ModelArg>();
        names_agree::<CellArg>();
        names_agree::<VariantArg>();
        names_agree::<rims::train::Task>();
        for v in VariantArg::value_variants() {
            let name = serde_json::to_value(v).unwrap();
            assert_eq!(name, v.variant().name());
            assert_eq!(Variant::parse(name.as_str().unwrap()).unwrap(), v.variant());
        }
    }

    #[test]
    fn fields_become_flags() {
        let e = name_flag(Error::config("input", "must be at least 1"), train_flag);
        assert_eq!(e.to_string(), "invalid config: --embed: must be at least 1");
        let e = name_flag(Error::config("input_key", "x"), train_flag);
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
                    "--hidden (H, units per mechanism): {} given, the checkpoint has {}",
                    saved.hidden + 1,
                    saved.hidden
                ),
            ]
        );
    }
}
