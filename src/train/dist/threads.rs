//! Ranks as threads of one process ([`Dist::in_process`](super::Dist::in_process)): the tests
//! of the sharding and of the loop's collective logic, which need no MPI.

use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Error, Result};

/// Ranks as threads: every collective is one exchange, each rank's bytes in, one combination
/// of all of them (in rank order) out.
pub(super) struct Group {
    size: usize,
    state: Mutex<Round>,
    turn: Condvar,
}

#[derive(Default)]
struct Round {
    arrived: usize,
    generation: u64,
    parts: Vec<Option<Vec<u8>>>,
    result: Arc<Vec<u8>>,
    /// A rank has dropped its `Dist`: no collective can complete any more.
    left: bool,
}

impl Group {
    pub(super) fn new(size: usize) -> Group {
        Group {
            size,
            state: Mutex::new(Round {
                parts: vec![None; size],
                ..Round::default()
            }),
            turn: Condvar::new(),
        }
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn exchange(
        &self,
        rank: usize,
        part: Vec<u8>,
        combine: impl FnOnce(&[Vec<u8>]) -> Vec<u8>,
    ) -> Result<Vec<u8>> {
        let gone = || Error::Stopped("another rank left the job".into());
        let mut round = self.state.lock().map_err(|_| gone())?;
        if round.left {
            return Err(gone());
        }
        round.parts[rank] = Some(part);
        round.arrived += 1;
        let generation = round.generation;
        if round.arrived == self.size {
            let parts: Vec<Vec<u8>> = round
                .parts
                .iter_mut()
                .map(|p| p.take().unwrap_or_default())
                .collect();
            round.result = Arc::new(combine(&parts));
            round.arrived = 0;
            round.generation += 1;
            self.turn.notify_all();
            return Ok(round.result.to_vec());
        }
        loop {
            round = self.turn.wait(round).map_err(|_| gone())?;
            if round.generation != generation {
                return Ok(round.result.to_vec());
            }
            if round.left {
                return Err(gone());
            }
        }
    }

    pub(super) fn leave(&self) {
        if let Ok(mut round) = self.state.lock() {
            round.left = true;
            self.turn.notify_all();
        }
    }
}
