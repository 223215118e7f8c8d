//! `rims eval`, `viz`, `verify` and `infer` on bad checkpoints, flags and inputs, and bad device environments.

use super::*;

#[test]
fn eval_and_viz() {
    let f = fixture();
    let run = s(&f.run);
    let eval = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["eval", "--device", "cpu", "--checkpoint", run];
        a.extend(extra);
        a.iter().map(|x| x.to_string()).collect()
    };
    let png = f.scratch.join("never.png");
    let cases = [
        case(
            &eval(&["--resolutions", "16"]),
            1,
            "--resolutions: is for smnist checkpoints",
        ),
        case(
            &eval(&["--lengths", "3,4,5"]),
            1,
            "--lengths: give one or two gaps",
        ),
        case(&eval(&["--lengths", "0"]), 1, "--lengths"),
        case(
            &eval(&["--lengths", "-3"]),
            2,
            "invalid value '-3' for '--lengths",
        ),
        case(
            &eval(&["--task", "smnist"]),
            1,
            "--task: the checkpoint was trained on",
        ),
        case(
            &eval(&["--task", "sudoku"]),
            2,
            "invalid value 'sudoku' for '--task <TASK>'",
        ),
        case(
            &[
                "eval",
                "--checkpoint",
                s(&f.path("smnist-state")),
                "--lengths",
                "5",
            ],
            1,
            "--lengths: is for copying and adding checkpoints",
        ),
        case(
            &[
                "eval",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("huge-hidden")),
            ],
            1,
            "needs at least",
        ),
        case(
            &[
                "eval",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("huge-batch")),
            ],
            1,
            "needs at least",
        ),
        case(
            &[
                "eval",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("zero-batch")),
            ],
            1,
            "batch: must be at least 1",
        ),
        case(
            &["eval", "--checkpoint", "/nonexistent/rims-run"],
            1,
            "no checkpoint here",
        ),
        case(
            &["eval", "--checkpoint", s(&f.path("corrupt-state"))],
            1,
            "not a valid checkpoint state",
        ),
        case(
            &[
                "eval",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("truncated-model")),
            ],
            1,
            "model.safetensors",
        ),
        case(
            &["eval", "--checkpoint", s(&f.path("only-metrics"))],
            1,
            "no checkpoint here",
        ),
        case(
            &[
                "viz",
                "--device",
                "cpu",
                "--checkpoint",
                run,
                "--example",
                "99",
                "--out",
                s(&png),
            ],
            1,
            "out of range",
        ),
        case(
            &[
                "viz",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("huge-hidden")),
            ],
            1,
            "needs at least",
        ),
        case(
            &["viz", "--metrics", s(&f.path("a-file"))],
            1,
            "cannot read",
        ),
        case(
            &["verify", "--tolerance", "NaN"],
            2,
            "'--tolerance <TOLERANCE>': NaN",
        ),
        case(
            &["verify", "--tolerance", "-1"],
            2,
            "'--tolerance <TOLERANCE>': -1",
        ),
        case(
            &["verify", "--tolerance", "abc"],
            2,
            "'--tolerance <TOLERANCE>'",
        ),
    ];
    assert!(check(&cases, &[]) >= 20);
    // viz on a dense baseline (masks [T, B, 1]) draws its one always-active layer.
    let out = f.scratch.join("lstm.png");
    let o = rims(&[
        "viz",
        "--device",
        "cpu",
        "--checkpoint",
        s(&f.lstm),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("1 mechanisms"), "{o:?}");
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn infer_inputs() {
    let f = fixture();
    let run = s(&f.run);
    let out = f.scratch.join("infer-out.safetensors");
    let infer = |input: &str| -> Vec<String> {
        [
            "infer",
            "--device",
            "cpu",
            "--checkpoint",
            run,
            "--input",
            s(&f.path(input)),
            "--out",
            s(&out),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let c = |input: &str, needle: &'static str| Case {
        args: infer(input),
        env: Vec::new(),
        code: 1,
        needle,
    };
    let input_x = f.path("x.safetensors");
    let model_file = rims::train::checkpoint::current(&f.run)
        .unwrap()
        .join("model.safetensors");
    let spelled = format!(
        "{}/../{}/x.safetensors",
        s(&f.root),
        f.root.file_name().unwrap().to_str().unwrap()
    );
    let cases = [
        c(
            "tokens-20.safetensors",
            "tensor 'tokens': 20 at [1, 0] is outside the checkpoint's vocabulary (0..=19)",
        ),
        c(
            "tokens-max.safetensors",
            "tensor 'tokens': 4294967295 at [1, 0] is outside",
        ),
        c(
            "tokens-negative.safetensors",
            "token -1 is negative or too large",
        ),
        c(
            "tokens-f32.safetensors",
            "tensor 'tokens' must be U32, I32 or I64",
        ),
        c("tokens-3d.safetensors", "'tokens' must be [T, B]"),
        c(
            "mask-half.safetensors",
            "tensor 'mask': 0.5 at [0, 1, 1] is neither 0 nor 1",
        ),
        c("mask-nan.safetensors", "tensor 'mask': NaN"),
        c("mask-two.safetensors", "tensor 'mask': 2 at"),
        c(
            "mask-shape.safetensors",
            "'mask' must be [3, 2, 3], is [2, 3, 3]",
        ),
        c(
            "x-nan.safetensors",
            "tensor 'x': NaN at [0, 1, 1] is not a finite number",
        ),
        c("x-inf.safetensors", "tensor 'x': inf at"),
        c("x-wide.safetensors", "'x' must be [T, B, 4], is [3, 2, 5]"),
        c("x-empty.safetensors", "T = 0 steps"),
        c("h0-nan.safetensors", "tensor 'h0': NaN at [0, 3]"),
        c("h0-shape.safetensors", "'h0' must be [2, 12], is [12, 2]"),
        c(
            "typo.safetensors",
            "tensor 'X_typo' is not an input of rims infer",
        ),
        c("both.safetensors", "give either 'x' or 'tokens', not both"),
        c(
            "only-y.safetensors",
            "no input: expected a tensor 'x' [T, B, D] or 'tokens' [T, B], found y",
        ),
        c("garbage.safetensors", "not a valid safetensors file"),
        c("missing.safetensors", "cannot read"),
        case(
            &[
                "infer",
                "--checkpoint",
                run,
                "--input",
                s(&input_x),
                "--out",
                s(&input_x),
            ],
            1,
            "--out: ",
        ),
        case(
            &[
                "infer",
                "--checkpoint",
                run,
                "--input",
                s(&input_x),
                "--out",
                &spelled,
            ],
            1,
            "x.safetensors, which this command reads",
        ),
        case(
            &[
                "infer",
                "--checkpoint",
                run,
                "--input",
                s(&input_x),
                "--out",
                s(&model_file),
            ],
            1,
            "lies inside the run directory",
        ),
        case(
            &[
                "infer",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.lstm),
                "--input",
                s(&f.path("lstm-mask.safetensors")),
                "--out",
                s(&out),
            ],
            1,
            "no mechanisms to mask",
        ),
        case(
            &[
                "infer",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("huge-hidden")),
                "--input",
                s(&input_x),
                "--out",
                s(&out),
            ],
            1,
            "needs at least",
        ),
        case(
            &[
                "infer",
                "--checkpoint",
                "/nonexistent/run",
                "--input",
                s(&input_x),
                "--out",
                s(&out),
            ],
            1,
            "no checkpoint here",
        ),
    ];
    assert!(check(&cases, &[]) >= 26);
    assert!(!out.exists(), "a refused infer wrote its output");
    // The good input still runs.
    let o = rims(
        &infer("x.safetensors")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn device_environment() {
    let cases = [
        case(
            &["eval", "--checkpoint", s(&fixture().run)],
            1,
            "RIMS_DEVICE: unknown device 'tpu'",
        )
        .env("RIMS_DEVICE", "tpu"),
        case(&["info"], 1, "RIMS_THREADS: '0' is not a thread count").env("RIMS_THREADS", "0"),
        case(&["info"], 1, "RIMS_THREADS: 'many'").env("RIMS_THREADS", "many"),
        case(&["info"], 1, "RIMS_BACKEND: unknown backend 'quantum'")
            .env("RIMS_BACKEND", "quantum"),
    ];
    assert!(check(&cases, &[]) >= 4);
    // --device wins over RIMS_DEVICE, which is then not read (the README's promise).
    let run = s(&fixture().run);
    let o = rims_env(
        &["eval", "--checkpoint", run, "--device", "cpu"],
        &[("RIMS_DEVICE", "tpu")],
    );
    assert_eq!(o.code, 0, "{o:?}");
    // Asked for a backend this machine lacks, the message lists what it has (if anything).
    let o = rims_env(&["info", "--device", "gpu"], &[("RIMS_BACKEND", "metal")]);
    if o.code != 0 {
        assert!(o.stderr.contains("metal backend"), "{o:?}");
        assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
    }
    // RIMS_ADAPTER=#N: adapter N of `rims info`'s list, or a one-line error naming what there is.
    let o = rims_env(&["info", "--device", "gpu"], &[("RIMS_ADAPTER", "#99")]);
    assert_eq!(o.code, 1, "{o:?}");
    // Only a machine without any adapter (and not CI, which installs llvmpipe) lacks an adapter 0.
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if ci || !o.stderr.contains("adapter found") {
        assert!(
            o.stderr
                .contains("RIMS_ADAPTER='#99': there is no adapter 99"),
            "{o:?}"
        );
        let o = rims_env(&["info", "--device", "gpu"], &[("RIMS_ADAPTER", "#0")]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stdout.contains("* [0] "), "{o:?}");
    }
}
