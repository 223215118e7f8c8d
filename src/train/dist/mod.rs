//! Data-parallel training: the ranks of a job and the few collective operations the training
//! loop asks of them ([`Dist`]), and how a global batch is cut into the ranks' shards
//! ([`shard_rows`], [`rows_of`]).
//!
//! A run on P ranks takes the steps a one-process run takes on the same global batches: every
//! rank draws the whole batch from the run's seeded stream (or, where sequences are seeded one
//! by one, only its own), keeps the rows `[r·B/P, (r+1)·B/P)`, computes the mean loss and its
//! gradient over them, and the ranks' flat gradients are summed with one allreduce per step
//! and divided by P: the mean over the whole batch, since the shards are equal. Every rank then
//! takes the same Adam step (clipping sees the averaged gradient), so the parameters stay equal
//! without being sent again. Rank 0 alone writes checkpoints and metrics.
//!
//! A job must never leave a rank blocked in a collective that another rank will not reach.
//! Every step that can fail on one rank and not on the others is followed by
//! [`Dist::agree`], which tells every rank whether any failed and, if so, the first failing
//! rank's message, so all of them stop together with that reason ([`Dist::failed_together`]
//! says it happened); a step's own failures ride in its gradient allreduce as one more value.
//!
//! Three transports: [`Dist::single`] (one process, every operation a no-op), MPI
//! ([`Dist::mpi`], behind the `mpi` feature: MPICH or another MPI under `mpiexec`) and ranks
//! as threads of one process ([`Dist::in_process`]: the tests of the sharding and of the
//! loop's collective logic, which need no MPI).

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

use super::TrainConfig;

/// Environment variables a launcher (MPICH's Hydra `mpiexec`, Slurm's `srun` with PMI-2 or
/// PMIx, Open MPI's `mpirun`) sets in each process it starts. `--dist mpi` without any of them
/// is a process started by hand, which MPI would run as a job of one.
pub const LAUNCHER_VARS: [&str; 6] = [
    "PMI_RANK",
    "PMI_FD",
    "PMI_PORT",
    "PMIX_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "MPI_LOCALNRANKS",
];

/// Whether a launcher started this process, judged by [`LAUNCHER_VARS`] read through `var`.
pub fn launched_by_mpi(var: impl Fn(&str) -> Option<String>) -> bool {
    LAUNCHER_VARS
        .iter()
        .any(|name| var(name).is_some_and(|v| !v.trim().is_empty()))
}

/// The rows of a global batch of `batch` rows that rank `rank` of `size` trains on:
/// `[rank·B/P, (rank+1)·B/P)`. The batch must divide into equal shards (the mean of the shards'
/// mean gradients is the batch's mean gradient only then).
pub fn shard_rows(batch: usize, rank: usize, size: usize) -> Result<Range<usize>> {
    if size == 0 || rank >= size {
        return Err(Error::invalid(
            "shard_rows",
            format!("rank {rank} of {size} ranks"),
        ));
    }
    if batch == 0 || !batch.is_multiple_of(size) {
        return Err(Error::config(
            "batch",
            format!(
                "{batch} rows do not split into {size} equal shards, one per rank: use a batch \
                 that {size} divides (e.g. {}) or another number of ranks",
                (batch / size).max(1) * size
            ),
        ));
    }
    let per = batch / size;
    Ok(rank * per..(rank + 1) * per)
}

/// Rows `rows` of a time-major `[steps, batch, width]` array: `[steps, rows.len(), width]`.
pub fn rows_of<T: Copy>(
    data: &[T],
    steps: usize,
    batch: usize,
    width: usize,
    rows: Range<usize>,
) -> Vec<T> {
    assert_eq!(
        data.len(),
        steps * batch * width,
        "rows_of: not [steps, batch, width]"
    );
    assert!(
        rows.end <= batch,
        "rows_of: rows {rows:?} of a batch of {batch}"
    );
    let mut out = Vec::with_capacity(steps * rows.len() * width);
    for t in 0..steps {
        let at = (t * batch + rows.start) * width;
        out.extend_from_slice(&data[at..at + rows.len() * width]);
    }
    out
}

/// Which share of some work a rank does: part `index` of `count` (an evaluation's rows of a
/// batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// This part, from 0.
    pub index: usize,
    /// Parts in all (at least 1).
    pub count: usize,
}

impl Part {
    /// All of the work.
    pub const WHOLE: Part = Part { index: 0, count: 1 };

    /// Rows `[index·n/count, (index+1)·n/count)` of `n`: the parts cover the rows once, in
    /// order, their sizes differing by at most one.
    pub fn rows(&self, n: usize) -> Range<usize> {
        n * self.index / self.count..n * (self.index + 1) / self.count
    }
}

/// What a run's steps cost, recorded when [`Dist::set_timing`] asked for it (`RIMS_DIST_TIMING`
/// in `rims train`): one entry per optimiser step, in seconds.
#[derive(Clone, Debug, Default)]
pub struct Timing {
    /// The whole step: forward, backward, gradient exchange and Adam, as the loop waited.
    pub step: Vec<f64>,
    /// The gradient allreduce alone (distributed runs).
    pub allreduce: Vec<f64>,
    /// Reading the gradient back to the host and writing the average to the device.
    pub host: Vec<f64>,
    /// Bytes each rank hands to one gradient allreduce.
    pub bytes: usize,
}

/// The median of `v` (0 for none).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The ranks of a training job, as the loop sees them; see the module docs.
pub struct Dist {
    rank: usize,
    size: usize,
    comm: Comm,
    /// A collective failure was agreed on: every rank holds its reason.
    together: Cell<bool>,
    timing: RefCell<Option<Timing>>,
}

enum Comm {
    Single,
    Threads(Arc<Group>),
    #[cfg(feature = "mpi")]
    Mpi(mpi_comm::World),
}

impl std::fmt::Debug for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dist")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("transport", &self.transport())
            .finish()
    }
}

impl Dist {
    fn with(rank: usize, size: usize, comm: Comm) -> Dist {
        Dist {
            rank,
            size,
            comm,
            together: Cell::new(false),
            timing: RefCell::new(None),
        }
    }

    /// One process: rank 0 of 1, every collective a no-op.
    pub fn single() -> Dist {
        Dist::with(0, 1, Comm::Single)
    }

    /// `size` ranks as threads of this process, one [`Dist`] for each (move each into its own
    /// thread). A rank whose `Dist` is dropped while others wait in a collective makes theirs
    /// fail, as a launcher ends a job whose process died.
    pub fn in_process(size: usize) -> Result<Vec<Dist>> {
        if size == 0 {
            return Err(Error::invalid("Dist::in_process", "a job needs a rank"));
        }
        let group = Arc::new(Group::new(size));
        Ok((0..size)
            .map(|r| Dist::with(r, size, Comm::Threads(group.clone())))
            .collect())
    }

    /// The MPI job this process belongs to (MPI initialised here; finalised when the `Dist` is
    /// dropped). Refused outside a launcher ([`launched_by_mpi`]): `mpiexec -n P rims ...`.
    #[cfg(feature = "mpi")]
    pub fn mpi() -> Result<Dist> {
        if !launched_by_mpi(|name| std::env::var(name).ok()) {
            return Err(Error::config(
                "--dist",
                format!(
                    "mpi runs under an MPI launcher, and none started this process (none of {} \
                     is set): run it as `mpiexec -n P rims train --dist mpi ...`",
                    LAUNCHER_VARS.join(", ")
                ),
            ));
        }
        let world = mpi_comm::World::init()?;
        let (rank, size) = (world.rank(), world.size());
        Ok(Dist::with(rank, size, Comm::Mpi(world)))
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Ranks in the job (P).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Rank 0: the one that reads and writes the run directory and reports.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Ranks of the job on this machine (this one included): how many share its cores.
    pub fn local_ranks(&self) -> usize {
        match &self.comm {
            Comm::Single => 1,
            Comm::Threads(g) => g.size(),
            #[cfg(feature = "mpi")]
            Comm::Mpi(w) => w.local_ranks(),
        }
    }

    /// This rank's place among the job's ranks on this machine (0 to `local_ranks() - 1`, in
    /// the order of their ranks): which of the machine's GPUs it takes.
    pub fn local_rank(&self) -> usize {
        match &self.comm {
            Comm::Single => 0,
            Comm::Threads(_) => self.rank,
            #[cfg(feature = "mpi")]
            Comm::Mpi(w) => w.local_rank(),
        }
    }

    /// "one process", "MPI", "threads".
    pub fn transport(&self) -> &'static str {
        match &self.comm {
            Comm::Single => "one process",
            Comm::Threads(_) => "threads",
            #[cfg(feature = "mpi")]
            Comm::Mpi(_) => "MPI",
        }
    }

    /// Whether the last error a collective of this `Dist` returned was agreed on by every rank
    /// (so no rank is left waiting, and rank 0 holds the reason to print): when not, a
    /// distributed job should be aborted.
    pub fn failed_together(&self) -> bool {
        self.together.get()
    }

    /// Starts (or stops) recording [`Timing`].
    pub fn set_timing(&self, on: bool) {
        *self.timing.borrow_mut() = on.then(Timing::default);
    }

    /// Whether [`Timing`] is being recorded.
    pub fn timing_on(&self) -> bool {
        self.timing.borrow().is_some()
    }

    /// What has been recorded since [`Dist::set_timing`].
    pub fn timing(&self) -> Option<Timing> {
        self.timing.borrow().clone()
    }

    /// Records one step's times (when timing is on).
    pub(super) fn record(
        &self,
        step: f64,
        allreduce: Option<f64>,
        host: Option<f64>,
        bytes: usize,
    ) {
        if let Some(t) = self.timing.borrow_mut().as_mut() {
            t.step.push(step);
            t.allreduce.extend(allreduce);
            t.host.extend(host);
            t.bytes = bytes;
        }
    }

    /// Sums `buf` elementwise over the ranks, in place on every rank (one allreduce). Every
    /// rank passes a buffer of the same length.
    pub fn allreduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        match &self.comm {
            Comm::Single => Ok(()),
            Comm::Threads(g) => {
                let sum = g.exchange(self.rank, bytemuck::cast_slice(buf).to_vec(), |parts| {
                    let mut acc = vec![0f32; parts[0].len() / 4];
                    // In rank order, so the sum's bits do not depend on who arrived first.
                    for p in parts {
                        for (a, x) in acc.iter_mut().zip(bytemuck::cast_slice::<u8, f32>(p)) {
                            *a += x;
                        }
                    }
                    bytemuck::cast_slice(&acc).to_vec()
                })?;
                buf.copy_from_slice(bytemuck::cast_slice(&sum));
                Ok(())
            }
            #[cfg(feature = "mpi")]
            Comm::Mpi(w) => w.allreduce_sum(buf),
        }
    }

    /// [`Dist::allreduce_sum`] of f64 values (an evaluation's sums).
    pub fn allreduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        match &self.comm {
            Comm::Single => Ok(()),
            Comm::Threads(g) => {
                let sum = g.exchange(self.rank, bytemuck::cast_slice(buf).to_vec(), |parts| {
                    let mut acc = vec![0f64; parts[0].len() / 8];
                    for p in parts {
                        // Each part's bytes, copied to f64 alignment.
                        let values: Vec<f64> = bytemuck::pod_collect_to_vec(p);
                        for (a, x) in acc.iter_mut().zip(values) {
                            *a += x;
                        }
                    }
                    bytemuck::cast_slice(&acc).to_vec()
                })?;
                let values: Vec<f64> = bytemuck::pod_collect_to_vec(&sum);
                buf.copy_from_slice(&values);
                Ok(())
            }
            #[cfg(feature = "mpi")]
            Comm::Mpi(w) => w.allreduce_sum_f64(buf),
        }
    }

    /// Rank `root`'s bytes on every rank (`bytes` of another length is resized).
    pub fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        if root >= self.size {
            return Err(Error::invalid("Dist::broadcast", format!("no rank {root}")));
        }
        match &self.comm {
            Comm::Single => Ok(()),
            Comm::Threads(g) => {
                *bytes = g.exchange(self.rank, bytes.clone(), |parts| parts[root].clone())?;
                Ok(())
            }
            #[cfg(feature = "mpi")]
            Comm::Mpi(w) => w.broadcast(root, bytes),
        }
    }

    /// Rank 0's values in `values` on every rank (the same length everywhere).
    pub fn broadcast_f32(&self, values: &mut [f32]) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let mut bytes = bytemuck::cast_slice(values).to_vec();
        self.broadcast(0, &mut bytes)?;
        if bytes.len() != values.len() * 4 {
            return Err(Error::invalid(
                "Dist::broadcast_f32",
                format!(
                    "rank 0 sent {} values, rank {} expected {}",
                    bytes.len() / 4,
                    self.rank,
                    values.len()
                ),
            ));
        }
        bytemuck::cast_slice_mut(values).copy_from_slice(&bytes);
        Ok(())
    }

    /// Rank 0's `value` on every rank, as JSON (the others pass None).
    pub fn broadcast_json<T: Serialize + DeserializeOwned>(&self, value: Option<&T>) -> Result<T> {
        let json = |e: serde_json::Error| Error::invalid("Dist::broadcast_json", e.to_string());
        let mut bytes = match value {
            Some(v) => serde_json::to_vec(v).map_err(json)?,
            None => Vec::new(),
        };
        self.broadcast(0, &mut bytes)?;
        serde_json::from_slice(&bytes).map_err(json)
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&self) -> Result<()> {
        match &self.comm {
            Comm::Single => Ok(()),
            Comm::Threads(g) => g.exchange(self.rank, Vec::new(), |_| Vec::new()).map(drop),
            #[cfg(feature = "mpi")]
            Comm::Mpi(w) => {
                w.barrier();
                Ok(())
            }
        }
    }

    /// Every rank passes what its part of a step gave; all get `Ok` if every rank's was, and
    /// an error on every rank otherwise: a failing rank its own error, the others the first
    /// failing rank's message ("rank R: ..."). Costs one allreduce of P values, and a
    /// broadcast when something failed.
    pub fn agree<T>(&self, local: Result<T>) -> Result<T> {
        if self.size == 1 {
            return local;
        }
        let mut failed = vec![0f32; self.size];
        failed[self.rank] = f32::from(local.is_err());
        self.allreduce_sum(&mut failed)?;
        let Some(first) = failed.iter().position(|&f| f > 0.0) else {
            return local;
        };
        let mut message = match &local {
            Err(e) if self.rank == first => e.to_string().into_bytes(),
            _ => Vec::new(),
        };
        self.broadcast(first, &mut message)?;
        self.together.set(true);
        match local {
            Err(e) => Err(e),
            Ok(_) => Err(Error::Stopped(format!(
                "rank {first}: {}",
                String::from_utf8_lossy(&message)
            ))),
        }
    }

    /// Checks that every rank runs `cfg`: rank 0 sends its config, each rank compares its own
    /// field by field, and all fail together if one differs, naming the fields.
    pub fn agree_config(&self, cfg: &TrainConfig) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let mine = serde_json::to_value(cfg)
            .map_err(|e| Error::invalid("Dist::agree_config", e.to_string()));
        let root = self.broadcast_json(if self.is_root() {
            Some(mine.as_ref().unwrap_or(&serde_json::Value::Null))
        } else {
            None
        });
        let verdict = mine.and_then(|mine| {
            let root = root?;
            let diffs = differences(&mine, &root);
            if diffs.is_empty() {
                return Ok(());
            }
            let shown: Vec<String> = diffs
                .iter()
                .map(|(field, here, there)| {
                    format!(
                        "{field} is {here} on rank {} and {there} on rank 0",
                        self.rank
                    )
                })
                .collect();
            Err(Error::config(
                "dist",
                format!("the ranks' settings differ: {}", shown.join("; ")),
            ))
        });
        self.agree(verdict)
    }

    /// Checks that every rank holds the same `what`, from `mine`, a summary of something each
    /// rank read for itself (sizes and a hash of data files): rank 0 sends its own and all
    /// fail together if one differs, naming both.
    pub fn agree_same(&self, what: &str, mine: &str) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let own = mine.to_string();
        let root: Result<String> = self.broadcast_json(self.is_root().then_some(&own));
        let verdict = root.and_then(|root| match root == own {
            true => Ok(()),
            false => Err(Error::config(
                "dist",
                format!(
                    "{what} differs between the ranks: {own} on rank {} and {root} on rank 0",
                    self.rank
                ),
            )),
        });
        self.agree(verdict)
    }

    /// Makes a panic on this rank end the whole job (after the usual message), where
    /// unwinding would leave the other ranks waiting for this one (MPI only; elsewhere
    /// nothing changes).
    pub fn abort_on_panic(&self) {
        #[cfg(feature = "mpi")]
        if let Comm::Mpi(_) = &self.comm {
            let report = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                report(info);
                mpi_comm::abort_world(101);
            }));
        }
    }

    /// Ends the whole job now with exit code `code` (`MPI_Abort`): for a failure the other
    /// ranks do not know of, which would leave them waiting. One process exits.
    pub fn abort(&self, code: i32) -> ! {
        match &self.comm {
            #[cfg(feature = "mpi")]
            Comm::Mpi(w) => w.abort(code),
            _ => std::process::exit(code),
        }
    }
}

impl Drop for Dist {
    fn drop(&mut self) {
        if let Comm::Threads(g) = &self.comm {
            g.leave();
        }
    }
}

/// The top-level fields in which two JSON objects differ: (field, this one's, the other's).
fn differences(
    mine: &serde_json::Value,
    theirs: &serde_json::Value,
) -> Vec<(String, String, String)> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        mine.as_object().unwrap_or(&empty),
        theirs.as_object().unwrap_or(&empty),
    );
    let mut fields: Vec<&String> = a.keys().chain(b.keys()).collect();
    fields.sort();
    fields.dedup();
    let null = serde_json::Value::Null;
    fields
        .into_iter()
        .filter_map(|f| {
            let (x, y) = (a.get(f).unwrap_or(&null), b.get(f).unwrap_or(&null));
            (x != y).then(|| (f.clone(), shown(x), shown(y)))
        })
        .collect()
}

/// A config value as a flag would give it: the config's reals are f32 (0.002, not the f64
/// 0.0020000000949949026 that JSON holds).
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        serde_json::Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            match (x as f32) as f64 == x {
                true => (x as f32).to_string(),
                false => x.to_string(),
            }
        }
        other => other.to_string(),
    }
}

#[cfg(feature = "mpi")]
mod mpi_comm;
mod threads;

use threads::Group;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_equal_contiguous_and_cover_the_batch() {
        for (batch, size) in [(8, 1), (8, 2), (8, 4), (12, 3), (64, 8)] {
            let mut next = 0;
            for r in 0..size {
                let rows = shard_rows(batch, r, size).unwrap();
                assert_eq!((rows.start, rows.len()), (next, batch / size));
                next = rows.end;
            }
            assert_eq!(next, batch);
        }
        let e = shard_rows(10, 0, 4).unwrap_err().to_string();
        assert!(e.contains("batch") && e.contains("4 equal shards"), "{e}");
        assert!(shard_rows(8, 2, 2).is_err());
        assert!(shard_rows(0, 0, 1).is_err());
    }

    #[test]
    fn parts_cover_the_rows_once_in_order() {
        for (n, count) in [(64, 1), (64, 3), (5, 4), (2, 4)] {
            let mut next = 0;
            for index in 0..count {
                let rows = Part { index, count }.rows(n);
                assert_eq!(rows.start, next);
                assert!(rows.len() >= n / count && rows.len() <= n / count + 1);
                next = rows.end;
            }
            assert_eq!(next, n);
        }
        assert_eq!(Part::WHOLE.rows(7), 0..7);
    }

    #[test]
    fn rows_of_a_time_major_array() {
        // [steps 2, batch 4, width 2]: value = 100 t + 10 b + w.
        let data: Vec<u32> = (0..2)
            .flat_map(|t| (0..4).flat_map(move |b| (0..2).map(move |w| 100 * t + 10 * b + w)))
            .collect();
        assert_eq!(
            rows_of(&data, 2, 4, 2, 2..4),
            vec![20, 21, 30, 31, 120, 121, 130, 131]
        );
        assert_eq!(rows_of(&data, 2, 4, 2, 0..4), data);
        // The shards of every rank, put back together row by row, are the batch.
        let halves: Vec<Vec<u32>> = (0..2)
            .map(|r| rows_of(&data, 2, 4, 2, shard_rows(4, r, 2).unwrap()))
            .collect();
        for t in 0..2 {
            let joined: Vec<u32> = halves
                .iter()
                .flat_map(|h| h[t * 4..(t + 1) * 4].to_vec())
                .collect();
            assert_eq!(joined, data[t * 8..(t + 1) * 8]);
        }
    }

    #[test]
    fn a_launcher_is_recognised_by_its_variables() {
        assert!(!launched_by_mpi(|_| None));
        assert!(launched_by_mpi(|n| (n == "PMI_RANK").then(|| "1".into())));
        assert!(launched_by_mpi(|n| (n == "PMIX_RANK").then(|| "0".into())));
        assert!(!launched_by_mpi(|n| (n == "PMI_RANK").then(|| " ".into())));
    }

    fn in_threads<T: Send + 'static>(
        size: usize,
        body: impl Fn(Dist) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let body = Arc::new(body);
        let handles: Vec<_> = Dist::in_process(size)
            .unwrap()
            .into_iter()
            .map(|d| {
                let body = body.clone();
                std::thread::spawn(move || body(d))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn threads_sum_broadcast_and_agree() {
        let out = in_threads(3, |d| {
            let mut v = vec![d.rank() as f32, 1.0];
            d.allreduce_sum(&mut v).unwrap();
            let mut b = if d.rank() == 1 {
                b"one".to_vec()
            } else {
                Vec::new()
            };
            d.broadcast(1, &mut b).unwrap();
            d.barrier().unwrap();
            let ok = d.agree(Ok(d.rank())).unwrap();
            let failed = d.agree::<()>(if d.rank() == 2 {
                Err(Error::config("x", "broken here"))
            } else {
                Ok(())
            });
            (
                v,
                b,
                ok,
                failed.unwrap_err().to_string(),
                d.failed_together(),
            )
        });
        for (r, (v, b, ok, failed, together)) in out.into_iter().enumerate() {
            assert_eq!(v, vec![3.0, 3.0]);
            assert_eq!(b, b"one");
            assert_eq!(ok, r);
            assert!(together);
            if r == 2 {
                assert_eq!(failed, "invalid config: x: broken here");
            } else {
                assert_eq!(failed, "rank 2: invalid config: x: broken here");
            }
        }
    }

    #[test]
    fn ranks_that_disagree_on_the_config_all_fail_naming_the_field() {
        let out = in_threads(2, |d| {
            let cfg = TrainConfig {
                lr: if d.rank() == 0 { 1e-3 } else { 2e-3 },
                ..TrainConfig::default()
            };
            d.agree_config(&cfg).unwrap_err().to_string()
        });
        assert!(
            out[1].contains("lr is 0.002") && out[1].contains("0.001 on rank 0"),
            "{}",
            out[1]
        );
        assert!(out[0].starts_with("rank 1: "), "{}", out[0]);
        let same = in_threads(2, |d| d.agree_config(&TrainConfig::default()).is_ok());
        assert_eq!(same, vec![true, true]);
    }

    #[test]
    fn a_rank_that_leaves_does_not_leave_the_others_waiting() {
        let out = in_threads(2, |d| {
            if d.rank() == 1 {
                drop(d);
                return None;
            }
            let mut v = vec![1.0];
            Some(d.allreduce_sum(&mut v).unwrap_err().to_string())
        });
        assert_eq!(out[0].as_deref(), Some("another rank left the job"));
    }
}
