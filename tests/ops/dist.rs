//! Data-parallel training with the ranks as threads of this process (`Dist::in_process`, the
//! same loop and collectives as under MPI, without MPI): P ranks on shards of each batch take
//! the steps one process takes on the whole batch, and their evaluation in parts adds up to
//! one process's, on every task; a run resumes with another number of ranks; what one rank
//! refuses or stops, every rank does. The MPI transport itself
//! is tested by `.ci/mpi-test.sh`.

use std::path::{Path, PathBuf};

use rims::device::DeviceRequest;
use rims::train::dist::Dist;
use rims::train::{self, EvalRecord, Reporter, Summary, Task, TrainConfig, checkpoint};
use rims::{Context, Error, Result};

/// A tiny copying run without dropout (the ranks' masks would differ from one process's: they
/// are keyed by element indices), its state carried across batches.
fn tiny() -> TrainConfig {
    TrainConfig {
        batch: 8,
        dropout: 0.0,
        cell_dropout: 0.0,
        ..crate::trainer::tiny()
    }
}

fn dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("rims-dist-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Stops its rank's run when asked whether to go on after `at` steps (None: never).
struct StopAfter {
    at: Option<usize>,
    steps: usize,
}

impl Reporter for StopAfter {
    fn step(&mut self, _: usize, _: usize, _: usize, _: f32, _: usize) {
        self.steps += 1;
    }
    fn evaluated(&mut self, _: &EvalRecord) {}
    fn keep_going(&mut self) -> Result<()> {
        match self.at {
            Some(at) if self.steps >= at => Err(Error::Stopped(format!("told to stop after {at}"))),
            _ => Ok(()),
        }
    }
}

/// `cfg` trained into `out` by `p` ranks, each a thread with a one-thread CPU device; rank
/// `stop.0` stops after `stop.1` steps. Each rank's result, by rank.
fn ranks(
    p: usize,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    stop: Option<(usize, usize)>,
) -> Vec<Result<Summary>> {
    let dists = Dist::in_process(p).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = dists
            .into_iter()
            .map(|d| {
                s.spawn(move || {
                    let ctx = Context::new(DeviceRequest::cpu(Some(1))).unwrap();
                    let mut reporter = StopAfter {
                        at: stop.filter(|s| s.0 == d.rank()).map(|s| s.1),
                        steps: 0,
                    };
                    train::train_dist(&ctx, cfg, out, resume, &mut reporter, &d)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Rank 0's summary of a run on `p` ranks that every rank finished, with every rank's history
/// the same.
fn trained(p: usize, cfg: &TrainConfig, out: &Path, resume: bool) -> Summary {
    let mut all = ranks(p, cfg, out, resume, None).into_iter();
    let root = all.next().unwrap().unwrap();
    for other in all {
        let other = other.unwrap();
        assert_eq!(other.progress.step, root.progress.step);
        // Each rank's own clock aside.
        let timeless = |h: &[EvalRecord]| {
            h.iter()
                .map(|r| EvalRecord {
                    seconds: 0.0,
                    ..r.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            timeless(&other.history),
            timeless(&root.history),
            "every rank holds the same records"
        );
    }
    root
}

/// The current checkpoint's parameters, by name.
fn params(out: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(
        checkpoint::current(out)
            .unwrap()
            .join(checkpoint::MODEL_FILE),
    )
    .unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let data = st.tensor(&n).unwrap().data().to_vec();
            (n, bytemuck::pod_collect_to_vec(&data))
        })
        .collect()
}

/// The two runs' parameters and records agree within `tol` (relative to 1 and the value).
fn assert_same_run(what: &str, a: (&Summary, &Path), b: (&Summary, &Path), tol: f32) {
    assert_eq!(a.0.progress.step, b.0.progress.step, "{what}: steps");
    let epochs = |s: &Summary| s.history.iter().map(|r| r.epoch).collect::<Vec<_>>();
    assert_eq!(epochs(a.0), epochs(b.0), "{what}: evaluated epochs");
    for (ra, rb) in a.0.history.iter().zip(&b.0.history) {
        let close = |x: f64, y: f64| (x - y).abs() <= tol as f64 * (1.0 + y.abs());
        assert!(
            close(ra.train_loss, rb.train_loss),
            "{what}: epoch {} train loss {} against {}",
            ra.epoch,
            ra.train_loss,
            rb.train_loss
        );
        for (ea, eb) in ra.eval.iter().zip(&rb.eval) {
            assert!(close(ea.loss, eb.loss), "{what}: {ea:?} against {eb:?}");
        }
    }
    let (pa, pb) = (params(a.1), params(b.1));
    assert_eq!(pa.len(), pb.len());
    for ((na, va), (nb, vb)) in pa.iter().zip(&pb) {
        assert_eq!(na, nb);
        for (i, (x, y)) in va.iter().zip(vb).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}: {na}[{i}] is {x} against {y}"
            );
        }
    }
}

/// `cfg` on one process and on each of `ps` ranks gives the same run.
fn assert_ranks_repeat_one_process(what: &str, cfg: &TrainConfig, ps: &[usize]) {
    let one = dir("one");
    let a = trained(1, cfg, &one, false);
    for &p in ps {
        let many = dir("many");
        let b = trained(p, cfg, &many, false);
        assert_same_run(
            &format!("{what} on {p} ranks"),
            (&b, &many),
            (&a, &one),
            1e-4,
        );
        std::fs::remove_dir_all(&many).unwrap();
    }
    std::fs::remove_dir_all(&one).unwrap();
}

#[test]
fn ranks_take_the_steps_of_one_process_on_copying_with_carried_state() {
    assert_ranks_repeat_one_process("copying", &tiny(), &[2, 4]);
}

#[test]
fn ranks_take_the_steps_of_one_process_on_adding() {
    let cfg = TrainConfig {
        task: Task::Adding,
        train_len: 6,
        test_len: 8,
        carry_state: false,
        ..tiny()
    };
    assert_ranks_repeat_one_process("adding", &cfg, &[2]);
}

#[test]
fn ranks_take_the_steps_of_one_process_on_smnist() {
    let cfg = TrainConfig {
        task: Task::Smnist,
        resolution: 4,
        eval_resolutions: vec![4],
        limit: Some(24),
        carry_state: false,
        epochs: 1,
        ..tiny()
    };
    assert_ranks_repeat_one_process("smnist", &cfg, &[2]);
}

#[test]
fn ranks_take_the_steps_of_one_process_on_balls() {
    let cfg = TrainConfig {
        epochs: 1,
        iterations: 2,
        // On 3 ranks the 64 evaluation sequences split 21, 21, 22.
        batch: 6,
        cell_dropout: 0.0,
        ..crate::trainer::tiny_balls()
    };
    assert_ranks_repeat_one_process("balls", &cfg, &[2, 3]);
}

#[test]
fn a_run_resumes_on_another_number_of_ranks() {
    let cfg = TrainConfig {
        epochs: 3,
        ..tiny()
    };
    let straight = dir("straight");
    let a = trained(1, &cfg, &straight, false);
    // Epoch 1 on two ranks, epoch 2 on one process, epoch 3 on four ranks.
    let split = dir("split");
    for (p, epochs, resume) in [(2, 1, false), (1, 2, true), (4, 3, true)] {
        let part = TrainConfig {
            epochs,
            ..cfg.clone()
        };
        trained(p, &part, &split, resume);
    }
    let records = train::read_records(&split.join(checkpoint::METRICS_FILE)).unwrap();
    let epochs: Vec<usize> = records.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, vec![1, 2, 3], "every epoch once");
    let b = Summary {
        progress: checkpoint::read_state(&split).unwrap().progress,
        history: records,
    };
    assert_same_run(
        "resumed on 2, 1, 4 ranks",
        (&b, &split),
        (&a, &straight),
        1e-4,
    );
    std::fs::remove_dir_all(&straight).unwrap();
    std::fs::remove_dir_all(&split).unwrap();
}

#[test]
fn a_batch_the_ranks_cannot_share_is_refused_by_every_rank() {
    let cfg = TrainConfig { batch: 6, ..tiny() };
    let out = dir("uneven");
    for (rank, result) in ranks(4, &cfg, &out, false, None).into_iter().enumerate() {
        let e = result.unwrap_err().to_string();
        assert!(
            e.contains("6 rows do not split into 4 equal shards"),
            "rank {rank}: {e}"
        );
    }
    assert!(!out.exists(), "nothing was written");
}

#[test]
fn a_stop_on_one_rank_stops_every_rank_after_the_same_step() {
    // Three steps an epoch, checkpoints every epoch: rank 1 stops after step 4, in epoch 2.
    let out = dir("stop");
    let results = ranks(2, &tiny(), &out, false, Some((1, 4)));
    let errors: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect();
    assert_eq!(errors[1], "told to stop after 4");
    assert_eq!(errors[0], "rank 1: told to stop after 4");
    let state = checkpoint::read_state(&out).unwrap();
    assert_eq!((state.progress.epoch, state.progress.step), (1, 3));
    // The job resumes from there, on any number of ranks.
    let done = trained(1, &tiny(), &out, true);
    assert_eq!(done.progress.step, 6);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_failure_on_rank_0_alone_is_every_ranks_error() {
    // Only rank 0 opens the run directory: a new run over another run's checkpoint is refused
    // there, and the other ranks stop with its reason instead of waiting for it.
    let out = dir("taken");
    trained(
        1,
        &TrainConfig {
            epochs: 1,
            ..tiny()
        },
        &out,
        false,
    );
    let errors: Vec<String> = ranks(2, &tiny(), &out, false, None)
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect();
    assert!(errors[0].contains("out"), "{}", errors[0]);
    assert_eq!(errors[1], format!("rank 0: {}", errors[0]));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn ranks_holding_different_data_fail_together_naming_it() {
    // What each rank read for itself (its MNIST files) is compared by a summary: equal on
    // every rank passes, one that differs stops every rank with both summaries.
    let run = |summaries: &'static [&'static str]| -> Vec<Result<()>> {
        let dists = Dist::in_process(summaries.len()).unwrap();
        std::thread::scope(|s| {
            let handles: Vec<_> = dists
                .into_iter()
                .map(|d| s.spawn(move || d.agree_same("the data", summaries[d.rank()])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    assert!(run(&["10 digits (hash 1)"; 3]).iter().all(Result::is_ok));
    let errors: Vec<String> = run(&[
        "10 digits (hash 1)",
        "10 digits (hash 1)",
        "9 digits (hash 2)",
    ])
    .into_iter()
    .map(|r| r.unwrap_err().to_string())
    .collect();
    let reason = "the data differs between the ranks: 9 digits (hash 2) on rank 2 and 10 digits \
                  (hash 1) on rank 0";
    assert!(errors[2].contains(reason), "{}", errors[2]);
    assert!(errors[0].contains(reason), "{}", errors[0]);
    assert!(errors[1].contains(reason), "{}", errors[1]);
}

#[test]
fn the_mnist_fingerprint_tells_copies_apart() {
    let cfg = TrainConfig {
        task: Task::Smnist,
        limit: Some(40),
        ..tiny()
    };
    let a = train::load_mnist(&cfg).unwrap();
    let mut b = train::load_mnist(&cfg).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert!(
        a.fingerprint().starts_with("40 training, "),
        "{}",
        a.fingerprint()
    );
    b.val.images.pixels[7] ^= 1;
    assert_ne!(a.fingerprint(), b.fingerprint(), "one pixel");
    let mut c = train::load_mnist(&cfg).unwrap();
    c.test.labels.swap(0, 1);
    if c.test.labels[0] != c.test.labels[1] {
        assert_ne!(a.fingerprint(), c.fingerprint(), "two labels swapped");
    }
}
