//! `rims train --resume`: what is refused (naming only the flags given) and what is done.

use super::*;

#[test]
fn resume_refusals_name_only_the_flags_given() {
    let f = fixture();
    let run = s(&f.run);
    let resume = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["train", "--device", "cpu", "--resume", run];
        a.extend(extra);
        a.iter().map(|x| x.to_string()).collect()
    };
    let cases = [
        case(
            &resume(&["--hidden", "5", "--epochs", "2"]),
            1,
            "--hidden (H, units per mechanism): 5 given, the checkpoint has 4",
        ),
        case(
            &resume(&["--variant", "dido", "--epochs", "2"]),
            1,
            "--variant: dido given, the checkpoint has authors",
        ),
        case(
            &resume(&["--input-heads", "2", "--epochs", "2"]),
            1,
            "--input-heads: 2 given, the checkpoint has 1",
        ),
        case(
            &resume(&["--mechanisms", "2", "--epochs", "2"]),
            1,
            "flags disagree with the checkpoint",
        ),
        case(
            &resume(&["--task", "smnist", "--epochs", "2"]),
            1,
            "--task: smnist given, the checkpoint has copying",
        ),
        case(
            &resume(&["--model", "lstm", "--epochs", "2"]),
            1,
            "--model: lstm given, the checkpoint has rims",
        ),
        case(
            &resume(&["--clip", "0", "--epochs", "2"]),
            1,
            "--clip: none given, the checkpoint has 1",
        ),
        case(
            &resume(&["--no-carry", "--lr", "0.5", "--epochs", "2"]),
            1,
            "--lr: 0.5 given, the checkpoint has 0.005",
        ),
        case(&resume(&["--epochs", "1"]), 1, "--epochs: the run in"),
        case(&resume(&["--epochs", "0"]), 1, "--epochs"),
        case(
            &resume(&["--preset", "paper"]),
            2,
            "'--resume <RESUME>' cannot be used with '--preset <PRESET>'",
        ),
        case(
            &resume(&["--out", run, "--embed", "5", "--epochs", "2"]),
            1,
            "--embed: 5 given, the checkpoint has 4",
        ),
        case(
            &resume(&["--out", s(&f.lstm), "--epochs", "2"]),
            1,
            "already holds a checkpoint",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                "/nonexistent/rims-run",
            ],
            1,
            "no checkpoint here",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&f.path("huge-hidden")),
                "--epochs",
                "2",
            ],
            1,
            "--hidden (H, units per mechanism): training on batches",
        ),
        case(
            &[
                "train",
                "--resume",
                s(&f.path("bad-pointer")),
                "--epochs",
                "2",
            ],
            1,
            "latest: names '../run/epoch-000001', which is not a checkpoint of this run",
        ),
        case(
            &["train", "--resume", s(&f.path("lost-set")), "--epochs", "2"],
            1,
            "names epoch-000007, which does not exist",
        ),
        case(
            &[
                "train",
                "--resume",
                s(&f.path("corrupt-state")),
                "--epochs",
                "2",
            ],
            1,
            "not a valid checkpoint state",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&f.path("other-step")),
                "--epochs",
                "2",
            ],
            1,
            "belongs to step Some(\"2\"), train.json to step 3",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&f.path("truncated-model")),
                "--epochs",
                "2",
            ],
            1,
            "model.safetensors",
        ),
    ];
    assert!(check(&cases, &[]) >= 20);
    // A finished run without a larger --epochs is left as it is, and says so.
    let before = snapshot(&f.run);
    let o = rims(&["train", "--device", "cpu", "--resume", run]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains("has finished its 1 epochs; nothing to do"),
        "{o:?}"
    );
    assert_unchanged(&before, &f.run, "resuming a finished run");
    // Only the flags given are listed.
    let args = resume(&["--hidden", "5", "--epochs", "2"]);
    let o = rims(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.stderr.contains("--batch"), "{o:?}");
    assert!(!o.stderr.contains("--iterations"), "{o:?}");
}

#[test]
fn resume_behaviours() {
    let f = fixture();
    let base = f.scratch.join("resume");
    // Flags that match the checkpoint are accepted (N = 3 here; the preset's k = 3 must not
    // be held against it).
    let copy = base.join("copy");
    copy_dir(&f.run, &copy);
    let o = rims(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&copy),
        "--mechanisms",
        "3",
        "--hidden",
        "4",
        "--epochs",
        "2",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(metric_epochs(&copy), [1, 2]);
    // --resume R --out O continues R's run in O and leaves R as it is.
    let before = snapshot(&f.run);
    let elsewhere = base.join("elsewhere");
    let o = rims(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&f.run),
        "--out",
        s(&elsewhere),
        "--epochs",
        "2",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains(&format!("writing to {}", elsewhere.display())),
        "{o:?}"
    );
    assert_unchanged(&before, &f.run, "--resume R --out O");
    assert_eq!(metric_epochs(&elsewhere), [1, 2]);
    assert_eq!(
        rims::train::checkpoint::read_state(&elsewhere)
            .unwrap()
            .progress
            .step,
        4
    );
    // A run whose loss turns to NaN stops with an error giving the step; its checkpoint stays.
    let poisoned = base.join("poisoned");
    copy_dir(&f.run, &poisoned);
    let opt = poisoned.join("epoch-000001/optimizer.safetensors");
    let bytes = std::fs::read(&opt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: BTreeMap<String, String> = header.metadata().clone().unwrap().into_iter().collect();
    let len = st.tensor("adam.m").unwrap().shape()[0];
    write_tensors(
        &opt,
        &[
            // Valid but explosive moments (NaN ones are refused on load as corrupt): the
            // first update sends the weights to infinity and the next loss is NaN.
            f32_tensor("adam.m", &[len], &vec![1e38; len]),
            f32_tensor("adam.v", &[len], &vec![0.0; len]),
        ],
        Some(meta),
    );
    let n = check(
        &[case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&poisoned),
                "--epochs",
                "2",
            ],
            1,
            "training stopped at step 4: the training loss is NaN",
        )],
        &[&poisoned],
    );
    assert_eq!(n, 1);
    let o = rims(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&poisoned),
        "--epochs",
        "2",
    ]);
    assert!(
        o.stderr.contains(&format!(
            "its last checkpoint (epoch 1, step 2) in {} is kept",
            poisoned.display()
        )),
        "{o:?}"
    );
}
