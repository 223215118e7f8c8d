//! The MPI transport (the `mpi` feature): `MPI_COMM_WORLD` of the `mpi` crate.

use std::cell::RefCell;

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::error::{Error, Result};

pub(super) struct World {
    world: SimpleCommunicator,
    /// (rank among the ranks on this machine, how many there are).
    local: (usize, usize),
    scratch: RefCell<Vec<f32>>,
    // Dropped last: MPI_Finalize.
    _universe: mpi::environment::Universe,
}

impl World {
    pub(super) fn init() -> Result<World> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::config("dist", "MPI was already initialised in this process"))?;
        let world = universe.world();
        // The ranks that share this machine's memory, and so its cores and GPUs; keyed
        // by world rank, so the local ranks follow the world's order.
        let node = world.split_shared(world.rank());
        let local = (node.rank() as usize, node.size() as usize);
        Ok(World {
            world,
            local,
            scratch: RefCell::new(Vec::new()),
            _universe: universe,
        })
    }

    pub(super) fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    pub(super) fn size(&self) -> usize {
        self.world.size() as usize
    }

    pub(super) fn local_ranks(&self) -> usize {
        self.local.1.max(1)
    }

    pub(super) fn local_rank(&self) -> usize {
        self.local.0
    }

    pub(super) fn allreduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        if i32::try_from(buf.len()).is_err() {
            return Err(Error::invalid(
                "Dist::allreduce_sum",
                format!("{} values are more than one MPI call carries", buf.len()),
            ));
        }
        let mut scratch = self.scratch.borrow_mut();
        scratch.resize(buf.len(), 0.0);
        self.world
            .all_reduce_into(&buf[..], &mut scratch[..], SystemOperation::sum());
        buf.copy_from_slice(&scratch);
        Ok(())
    }

    pub(super) fn allreduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        if i32::try_from(buf.len()).is_err() {
            return Err(Error::invalid(
                "Dist::allreduce_sum_f64",
                format!("{} values are more than one MPI call carries", buf.len()),
            ));
        }
        let mut sum = vec![0f64; buf.len()];
        self.world
            .all_reduce_into(&buf[..], &mut sum[..], SystemOperation::sum());
        buf.copy_from_slice(&sum);
        Ok(())
    }

    pub(super) fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        let root = self.world.process_at_rank(root as i32);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| i32::try_from(l).is_ok())
            .ok_or_else(|| Error::invalid("Dist::broadcast", "message too long"))?;
        bytes.resize(len, 0);
        root.broadcast_into(&mut bytes[..]);
        Ok(())
    }

    pub(super) fn barrier(&self) {
        self.world.barrier();
    }

    pub(super) fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// `MPI_Abort` on the world, from anywhere once MPI is initialised (a panic hook).
pub(super) fn abort_world(code: i32) -> ! {
    SimpleCommunicator::world().abort(code)
}
