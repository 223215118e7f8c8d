//! Unit tests of the training configuration: the schedule, the presets, validation and
//! reading old `train.json` files.

use super::*;

#[test]
fn cosine_schedule_starts_at_lr_halves_midway_and_ends_at_zero() {
    let c = TrainConfig {
        lr: 4e-3,
        lr_schedule: LrSchedule::Cosine,
        ..TrainConfig::default()
    };
    assert_eq!(c.lr_at(0, 100), 4e-3);
    assert!((c.lr_at(50, 100) - 2e-3).abs() < 1e-9);
    assert!((c.lr_at(25, 100) as f64 - 4e-3 * (0.5 + 0.5 * 0.5f64.sqrt())).abs() < 1e-9);
    assert!(c.lr_at(100, 100).abs() < 1e-12);
    // Past the end (a run resumed with fewer epochs) it stays at zero.
    assert!(c.lr_at(150, 100).abs() < 1e-12);
    let constant = TrainConfig {
        lr_schedule: LrSchedule::Constant,
        ..c
    };
    assert_eq!(constant.lr_at(77, 100), 4e-3);
}

#[test]
fn paper_presets_keep_the_authors_constant_rate_and_init() {
    for task in [Task::Copying, Task::Smnist, Task::Adding] {
        let p = TrainConfig::paper(task);
        assert_eq!((p.lr_schedule, p.input_gain), (LrSchedule::Constant, 1.0));
        p.validate().unwrap();
    }
}

#[test]
fn input_gain_is_refused_for_a_dense_model_and_when_not_positive() {
    let dense = TrainConfig {
        model: "lstm".into(),
        ..TrainConfig::default()
    };
    let e = dense.validate().unwrap_err().to_string();
    assert!(e.contains("input_gain"), "{e}");
    for g in [0.0, -1.0, f32::NAN] {
        let c = TrainConfig {
            input_gain: g,
            ..TrainConfig::default()
        };
        assert!(c.validate().is_err(), "gain {g} accepted");
    }
}

#[test]
fn a_train_json_from_before_variant_and_input_heads_reads_as_the_authors_with_one_head() {
    let mut v = serde_json::to_value(TrainConfig::default()).unwrap();
    let fields = v.as_object_mut().unwrap();
    fields.remove("variant").unwrap();
    fields.remove("input_heads").unwrap();
    let c: TrainConfig = serde_json::from_value(v).unwrap();
    assert_eq!((c.variant.as_str(), c.input_heads), ("authors", 1));
    assert_eq!(c, TrainConfig::default());
}

#[test]
fn rims_settings_are_refused_for_a_dense_model() {
    let dense = TrainConfig {
        model: "gru".into(),
        input_gain: 1.0,
        ..TrainConfig::default()
    };
    dense.validate().unwrap();
    let e = TrainConfig {
        variant: "dido".into(),
        ..dense.clone()
    };
    assert_eq!(
        e.validate().unwrap_err().to_string(),
        "invalid config: variant: dido is a RIMs setting; a dense gru has none"
    );
    let e = TrainConfig {
        input_heads: 2,
        ..dense
    };
    assert!(
        e.validate()
            .unwrap_err()
            .to_string()
            .contains("input_heads")
    );
}

#[test]
fn new_runs_take_settings_by_name_over_the_preset() {
    use new_run::{Preset, new_run};
    let given = |json: &str| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(json).unwrap()
    };
    // Nothing given: the main job.
    assert_eq!(
        new_run(Preset::Small, &given("{}")).unwrap(),
        TrainConfig::default()
    );
    let c = new_run(Preset::Small, &given(r#"{"task": "adding", "epochs": 3}"#)).unwrap();
    assert_eq!((c.task, c.epochs, c.train_len), (Task::Adding, 3, 50));
    let p = new_run(
        Preset::Paper,
        &given(r#"{"task": "smnist", "model": "lstm"}"#),
    )
    .unwrap();
    let paper = TrainConfig::paper(Task::Smnist);
    assert_eq!(p.hidden, paper.hidden * paper.mechanisms); // LSTM-600
    // Variant D: d_vc = H, no preset forget-gate bias.
    let d = new_run(
        Preset::Small,
        &given(r#"{"variant": "dido", "hidden": 12, "task": "smnist"}"#),
    )
    .unwrap();
    assert_eq!((d.comm_value, d.forget_bias), (12, 0.0));
    assert_eq!(
        new_run(Preset::Small, &given(r#"{"clip": 0}"#))
            .unwrap()
            .clip,
        None
    );
    for (bad, says) in [
        (r#"{"epocs": 3}"#, "'epocs' is not a setting"),
        (r#"{"task": "chess"}"#, "unknown task"),
        (r#"{"epochs": "many"}"#, "wrong type"),
        (r#"{"active": 9}"#, "active"),
    ] {
        let err = new_run(Preset::Small, &given(bad)).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
    assert!(Preset::parse("huge").is_err());
}
