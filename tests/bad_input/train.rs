//! `rims train` flags out of range, outputs that cannot be written, data that cannot be read.

use super::*;

#[test]
fn train_flags_out_of_range() {
    let cases = [
        train_case(&["--clip=-1"], 1, "--clip: -1 is not a positive number"),
        // Not finite: no setting means it, refused as a usage error.
        train_case(
            &["--clip=NaN"],
            2,
            "invalid value 'NaN' for '--clip <CLIP>': NaN is not a finite number",
        ),
        train_case(
            &["--clip", "inf"],
            2,
            "'--clip <CLIP>': inf is not a finite",
        ),
        train_case(
            &["--lr", "-0.01"],
            1,
            "--lr: -0.01 is not a positive number",
        ),
        train_case(&["--lr=0"], 1, "--lr: 0"),
        train_case(&["--lr", "NaN"], 2, "'--lr <LR>': NaN"),
        train_case(&["--embed", "0"], 1, "--embed: must be at least 1"),
        train_case(&["--batch", "0"], 1, "--batch: must be at least 1"),
        train_case(&["--epochs", "0"], 1, "--epochs: must be at least 1"),
        train_case(
            &["--iterations", "0"],
            1,
            "--iterations: must be at least 1",
        ),
        train_case(
            &["--mechanisms", "0"],
            1,
            "--mechanisms: must be at least 1",
        ),
        train_case(
            &["--mechanisms", "65", "--active", "2"],
            1,
            "--mechanisms: 65",
        ),
        train_case(&["--active", "0"], 1, "--active: must be at least 1"),
        train_case(&["--active", "4"], 1, "--active: k = 4 exceeds"),
        train_case(
            &["--hidden", "0"],
            1,
            "--hidden (H, units per mechanism): must be at least 1",
        ),
        train_case(
            &["--model", "lstm", "--hidden", "0"],
            1,
            "--hidden (units of the dense layer): must be at least 1",
        ),
        train_case(
            &["--input-heads", "0"],
            1,
            "--input-heads: must be at least 1",
        ),
        train_case(
            &["--model", "gru", "--input-heads", "2"],
            1,
            "--input-heads: a RIMs setting, given for a dense gru model",
        ),
        train_case(
            &["--model", "lstm", "--variant", "dido"],
            1,
            "--variant: a RIMs setting, given for a dense lstm model",
        ),
        train_case(&["--dropout", "1"], 1, "--dropout: 1 is not in [0, 1)"),
        train_case(&["--dropout", "-0.1"], 1, "--dropout: -0.1"),
        train_case(&["--dropout", "NaN"], 2, "'--dropout <DROPOUT>': NaN"),
        train_case(
            &["--forget-bias", "inf"],
            2,
            "'--forget-bias <FORGET_BIAS>': inf",
        ),
        train_case(
            &["--input-gain=-inf"],
            2,
            "'--input-gain <INPUT_GAIN>': -inf",
        ),
        train_case(&["--cell", "gru", "--forget-bias", "1"], 1, "forget gate"),
        train_case(
            &["--eval-every", "0"],
            1,
            "--eval-every: must be at least 1",
        ),
        train_case(&["--symbols", "0"], 1, "--symbols: must be at least 1"),
        train_case(&["--train-len", "0"], 1, "--train-len: must be at least 1"),
        train_case(&["--test-len", "0"], 1, "--test-len: must be at least 1"),
        train_case(
            &["--cell", "rnn"],
            2,
            "invalid value 'rnn' for '--cell <CELL>'",
        ),
        train_case(
            &["--model", "transformer"],
            2,
            "invalid value 'transformer' for '--model <MODEL>'",
        ),
        train_case(
            &["--task", "sudoku"],
            2,
            "invalid value 'sudoku' for '--task",
        ),
        train_case(
            &["--preset", "huge"],
            2,
            "invalid value 'huge' for '--preset",
        ),
        train_case(
            &["--variant", "nonsense"],
            2,
            "invalid value 'nonsense' for '--variant <VARIANT>'",
        ),
        train_case(
            &["--task", "smnist", "--resolution", "0"],
            1,
            "--resolution",
        ),
        // Sizes that cannot fit are refused before anything is allocated.
        train_case(&["--batch", "10000000"], 1, "--batch: training on batches"),
        train_case(
            &["--hidden", "100000"],
            1,
            "--hidden (H, units per mechanism): training on batches",
        ),
        train_case(&["--train-len", "1000000000"], 1, "needs at least"),
        // Usage errors: clap names the flag.
        train_case(&["--batch", "-1"], 2, "invalid value '-1' for '--batch"),
        train_case(&["--batch", "many"], 2, "'--batch <BATCH>'"),
        train_case(&["--seed", "-1"], 2, "'--seed <SEED>'"),
        train_case(&["--device", "tpu"], 2, "'--device <DEVICE>'"),
        train_case(&["--carry", "--no-carry"], 2, "cannot be used with"),
        train_case(&["--hiden", "4"], 2, "unexpected argument '--hiden'"),
    ];
    assert!(check(&cases, &[]) >= 44);
}

#[test]
fn train_outputs_and_data() {
    let f = fixture();
    let mnist = f.path("mnist-5");
    let cases = [
        case(
            &["train", "--device", "cpu", "--out", s(&f.run)],
            1,
            "already holds a checkpoint: pass --resume",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--out",
                s(&f.path("only-metrics")),
            ],
            1,
            "holds metrics.jsonl of another run but no checkpoint",
        ),
        case(
            &["train", "--device", "cpu", "--out", s(&f.path("a-file"))],
            1,
            "cannot create the directory",
        ),
        train_case(
            &["--task", "smnist", "--mnist-dir", s(&mnist)],
            1,
            "too few images: 4 training, 0 validation and 1 test",
        ),
        train_case(
            &["--task", "smnist", "--mnist-dir", s(&mnist), "--batch", "1"],
            1,
            "too few images",
        ),
        train_case(
            &["--task", "smnist", "--mnist-dir", "/nonexistent/mnist"],
            1,
            "not a directory",
        ),
        train_case(
            &["--task", "smnist", "--limit", "3"],
            1,
            "(at most 3 per split, --limit)",
        ),
        // A loss that stops being a number stops the run, naming the step.
        train_case(
            &["--lr", "1e30"],
            1,
            "training stopped at step 2: the training loss is NaN",
        ),
        train_case(&[], 1, "RIMS_FAULT_SAVE").env("RIMS_FAULT_SAVE", "soon"),
    ];
    assert!(check(&cases, &[]) >= 9);
}
