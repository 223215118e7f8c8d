//! Issue 21's cases that are not about one subcommand's flags: outputs that would land inside a
//! run directory or on a file the command reads, a symbolic link at every writer's `--out`,
//! `rims summary` pooling what is not seeds of one configuration, metrics no run writes, and
//! messages that used to blame the wrong thing.

use super::*;

use rims::interop::state_dict::{Entry, StateDict};

/// A fresh directory under the fixture's scratch for one test.
fn area(name: &str) -> PathBuf {
    let d = fixture().scratch.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// `rims export --to authors --checkpoint RUN --out OUT --force`.
fn export(run: &str, out: &str) -> Vec<String> {
    strings(&[
        "export",
        "--to",
        "authors",
        "--checkpoint",
        run,
        "--out",
        out,
        "--force",
    ])
}

/// `rims viz --metrics RUN --out OUT`.
fn viz(run: &str, out: &str) -> Vec<String> {
    strings(&["viz", "--metrics", run, "--out", out])
}

/// `rims infer` of the fixture's x.safetensors with the run in `run`, to `out`.
fn infer(run: &str, out: &str) -> Vec<String> {
    strings(&[
        "infer",
        "--checkpoint",
        run,
        "--input",
        s(&fixture().path("x.safetensors")),
        "--out",
        out,
    ])
}

#[cfg(unix)]
#[test]
fn outputs_inside_a_run_or_over_a_file_it_reads_are_refused() {
    let f = fixture();
    let run = s(&f.run);
    let here = area("outputs");
    let set = rims::train::checkpoint::current(&f.run).unwrap();
    // Spellings of the run's own files: with ./ and .., absolute, through a linked directory.
    let dotted = format!("{}/./run/latest", s(&f.root));
    let climbed = format!("{}/../{}/run/metrics.jsonl", s(&f.root), {
        f.root.file_name().unwrap().to_str().unwrap()
    });
    // Outside `here`, whose files the check snapshots.
    let linked_dir = area("outputs-link").join("linked-run");
    std::os::unix::fs::symlink(&f.run, &linked_dir).unwrap();
    let through_link = format!("{}/model.safetensors", s(&linked_dir));
    let in_set = s(&set.join("model.safetensors")).to_string();
    // A hard link outside the run to one of its files.
    let hard = here.join("hard-metrics.jsonl");
    std::fs::hard_link(f.run.join("metrics.jsonl"), &hard).unwrap();
    let nested = format!("{run}/epoch-000099");
    let inside = "lies inside the run directory";
    let cases = [
        case(&export(run, &dotted), 1, inside),
        case(&export(run, &in_set), 1, inside),
        case(&export(run, &through_link), 1, inside),
        case(&viz(run, &dotted), 1, inside),
        case(&viz(run, &climbed), 1, inside),
        case(&viz(run, &in_set), 1, inside),
        case(&viz(run, s(&hard)), 1, "which this command reads"),
        case(
            &[
                "viz",
                "--checkpoint",
                run,
                "--out",
                &format!("{run}/masks.png"),
            ],
            1,
            inside,
        ),
        case(&infer(run, &format!("{run}/y.safetensors")), 1, inside),
        case(
            &[
                "bench",
                "--device",
                "cpu",
                "--quick",
                "--out",
                &format!("{run}/bench.json"),
            ],
            1,
            inside,
        ),
        case(
            &[
                "train", "--device", "cpu", "--resume", run, "--out", &nested, "--epochs", "2",
            ],
            1,
            "--out: ",
        ),
        case(
            &[
                "import",
                "--from",
                "authors",
                s(&fixture_state(&here)),
                "--out",
                &nested,
                "--active",
                "2",
            ],
            1,
            inside,
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--out",
                &format!("{run}/inner"),
                "--epochs",
                "1",
            ],
            1,
            inside,
        ),
    ];
    check(&cases, &[&here]);
    assert!(
        !f.run.join("epoch-000099").exists(),
        "nothing was created in the run"
    );
    assert!(!f.run.join("inner").exists());
}

/// The authors' LSTM cell of the PyTorch fixtures as a bare state_dict in `dir`.
fn fixture_state(dir: &Path) -> PathBuf {
    let path = dir.join("authors-cell.safetensors");
    if !path.exists() {
        write_state(&path, fixture_cell("authors_lstm", |t| t));
    }
    path
}

/// The tensors of a PyTorch fixture's `state.` section (its cell), passed through `edit`.
fn fixture_cell(
    file: &str,
    edit: impl FnOnce(BTreeMap<String, Entry>) -> BTreeMap<String, Entry>,
) -> BTreeMap<String, Entry> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(format!("{file}.safetensors"));
    let sd = StateDict::read(&p).unwrap();
    let cell = sd
        .entries()
        .iter()
        .filter_map(|(k, e)| Some((k.strip_prefix("state.")?.to_string(), e.clone())))
        .collect();
    edit(cell)
}

fn write_state(path: &Path, tensors: BTreeMap<String, Entry>) {
    let sd = StateDict::from_entries(path, tensors);
    std::fs::write(path, sd.encode_f32(&BTreeMap::new()).unwrap()).unwrap();
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_at_out_is_refused_by_every_writer() {
    let f = fixture();
    let run = s(&f.run);
    let here = area("links");
    let victim = here.join("victim.txt");
    std::fs::write(&victim, "the user's file").unwrap();
    let link = here.join("out-link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = s(&link);
    let bench = [
        "bench",
        "--device",
        "cpu",
        "--quick",
        "--config",
        "small",
        "--repeats",
        "1",
        "--out",
        out,
    ];
    let link_refused = "symbolic link";
    let writers = [
        case(&viz(run, out), 1, link_refused),
        case(&["viz", "--checkpoint", run, "--out", out], 1, link_refused),
        case(&export(run, out), 1, link_refused),
        case(&infer(run, out), 1, link_refused),
        case(&bench, 1, link_refused),
    ];
    // The snapshot of `here` reads the victim through the link too: neither may change.
    check(&writers, &[&here]);
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "the user's file");
    // A run directory's writers: a lock file or metrics.jsonl planted as a link is not
    // followed (tests/bad_input/files.rs and lock.rs cover them in detail).
    let planted = here.join("planted");
    copy_dir(&f.run, &planted);
    std::fs::remove_file(planted.join("metrics.jsonl")).unwrap();
    std::os::unix::fs::symlink(&victim, planted.join("metrics.jsonl")).unwrap();
    let o = rims(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&planted),
        "--epochs",
        "2",
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("symbolic link"), "{o:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "the user's file");
}

#[test]
fn summary_refuses_to_pool_what_is_not_seeds_of_one_configuration() {
    let f = fixture();
    let here = area("summary");
    let copy = |name: &str| {
        let d = here.join(name);
        copy_dir(&f.run, &d);
        d
    };
    let (same_a, same_b) = (copy("same-s1"), copy("same-s2"));
    let mixed_copy = copy("mixed-s1");
    let mixed_add = here.join("mixed-s2");
    train_tiny(&mixed_add, 1, &["--task", "adding", "--seed", "2"]);
    let bare_tag = copy("-s3");
    // A run whose checkpoint's copy of the records is corrupt: the copy is named, not the
    // intact DIR/metrics.jsonl.
    let torn = copy("torn");
    let set = rims::train::checkpoint::current(&torn).unwrap();
    std::fs::write(set.join("metrics.jsonl"), "{\"epoch\": 1, \"step\"\n").unwrap();
    let spelled = format!("{}/./same-s1", s(&here));
    let cases = [
        case(
            &["summary", s(&mixed_copy), s(&mixed_add)],
            1,
            "share the name 'mixed' but not their settings (",
        ),
        case(
            &["summary", s(&same_a), &spelled],
            1,
            "are the same run directory",
        ),
        case(&["summary", s(&same_a), s(&same_b)], 1, "are both seed"),
        case(&["summary", s(&bare_tag)], 1, "its name is only a seed tag"),
        case(
            &["summary", s(&same_a), s(&here.join("gone-s4"))],
            1,
            "gone-s4: does not exist",
        ),
        case(
            &["summary", s(&torn)],
            1,
            "epoch-000001/metrics.jsonl: line 1",
        ),
    ];
    check(&cases, &[&here]);
    // What a glob over a runs folder also matches (a log) is skipped with a note.
    std::fs::write(here.join("notes.log"), "a log").unwrap();
    let o = rims(&["summary", s(&same_a), s(&here.join("notes.log"))]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("skipped 1 path(s) that are files"),
        "{o:?}"
    );
    assert!(o.stdout.contains("| same | 1 |"), "{o:?}");
}

#[test]
fn metrics_no_run_writes_are_refused_not_drawn() {
    let f = fixture();
    let here = area("metrics");
    let edited = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let d = here.join(name);
        copy_dir(&f.run, &d);
        let text = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(d.join("metrics.jsonl"), format!("{v}\n")).unwrap();
        d
    };
    let negative = edited("negative", &|v| v["eval"][0]["loss"] = (-1.5).into());
    let huge = edited("huge", &|v| v["eval"][1]["accuracy"] = 1e300.into());
    let train_loss = edited("train-loss", &|v| v["train_loss"] = (-0.1).into());
    let png = s(&here.join("x.png")).to_string();
    let cases = [
        case(
            &["viz", "--metrics", s(&negative), "--out", &png],
            1,
            "loss -1.5 is not a loss",
        ),
        case(
            &["viz", "--metrics", s(&huge), "--out", &png],
            1,
            "accuracy 1e300 is not a fraction in [0, 1]",
        ),
        case(
            &["viz", "--metrics", s(&train_loss), "--out", &png],
            1,
            "train_loss -0.1 is not a loss",
        ),
    ];
    check(&cases, &[&here]);
    assert!(!here.join("x.png").exists());
}

#[test]
fn messages_name_the_real_cause() {
    let f = fixture();
    let here = area("messages");
    let lstm = s(&f.lstm);
    // Two authors' BlocksCores (a two-layer RNNModel) with its encoder and decoder.
    let cell = fixture_cell("authors_lstm", |t| t);
    let (n, h, input) = (4, 3, 5);
    let mut two: BTreeMap<String, Entry> = BTreeMap::new();
    for (k, e) in &cell {
        two.insert(format!("bc_lst.0.{k}"), e.clone());
        two.insert(format!("bc_lst.1.{k}"), e.clone());
    }
    // The copying task's 20 tokens in, 20 classes out.
    two.insert(
        "encoder.weight".into(),
        Entry::new(&[20, input], vec![0.1; 20 * input]),
    );
    two.insert(
        "decoder.weight".into(),
        Entry::new(&[20, n * h], vec![0.2; 20 * n * h]),
    );
    two.insert("decoder.bias".into(), Entry::new(&[20], vec![0.0; 20]));
    let two_layers = here.join("two-layers.safetensors");
    write_state(&two_layers, two.clone());
    let mut no_bias = two.clone();
    no_bias.remove("decoder.bias");
    let no_bias_file = here.join("no-decoder-bias.safetensors");
    write_state(&no_bias_file, no_bias);
    // dido's cell with a zero-sized axis.
    let dido = |name: &str, key: &str, shape: &[usize]| {
        let p = here.join(name);
        write_state(
            &p,
            fixture_cell("dido_lstm", |mut t| {
                t.insert(key.into(), Entry::new(shape, vec![]));
                t
            }),
        );
        p
    };
    let empty_value = dido("dido-value-0.safetensors", "value.weight", &[0, 5]);
    let empty_value_ = dido("dido-value_-0.safetensors", "value_.w", &[4, 3, 0]);
    let import = |from: &str, file: &Path, extra: &[&str]| {
        let mut a = strings(&[
            "import",
            "--from",
            from,
            s(file),
            "--out",
            s(&here.join("never")),
            "--active",
            "3",
        ]);
        a.extend(strings(extra));
        a
    };
    let cases = [
        case(
            &train(&["--init", lstm, "--mechanisms", "2"]),
            1,
            "--mechanisms: a RIMs setting, given for a dense lstm model (the init run",
        ),
        case(
            &train(&["--model", "gru", "--active", "1"]),
            1,
            "--active: a RIMs setting",
        ),
        case(
            &import("authors", &no_bias_file, &["--prefix", "bc_lst.1."]),
            1,
            "'decoder.weight' without 'decoder.bias'",
        ),
        case(&import("dido", &empty_value, &[]), 1, "value.weight"),
        case(&import("dido", &empty_value_, &[]), 1, "value_.w"),
        case(
            &[
                "viz",
                "--checkpoint",
                s(&f.run),
                "--example",
                "15",
                "--out",
                s(&here.join("m.png")),
            ],
            1,
            "example: 15 is out of range: the batch has 4 sequences",
        ),
        case(
            &["eval", "--checkpoint", s(&f.root)],
            1,
            "no checkpoint here",
        ),
    ];
    check(&cases, &[&here]);
    assert!(!here.join("never").exists());
    // One layer of the two is imported, the other left out with a note.
    let out = here.join("layer-1");
    let o = rims(&strings_ref(
        &import("authors", &two_layers, &["--prefix", "bc_lst.1."]),
        &out,
    ));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains("left out") && o.stdout.contains("'bc_lst.0.'"),
        "{o:?}"
    );
    assert!(out.join("latest").is_file());
}

/// `args` with the value after `--out` replaced by `out`.
fn strings_ref<'a>(args: &'a [String], out: &'a Path) -> Vec<&'a str> {
    let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(i) = v.iter().position(|a| *a == "--out") {
        v[i + 1] = s(out);
    }
    v
}
