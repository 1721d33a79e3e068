//! The MPI backend (cargo feature `mpi`): one worker per MPI process, on Open MPI through the
//! `mpi` crate (rsmpi).

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};

use super::{Communicator, ParallelError, check_root, invalid_weight, mean, valid_weight, weighted};
use crate::float::Float;

/// The [`Communicator`] of one MPI process: run the program with `mpirun -np W …`.
///
/// Data travel as `f64`. With two processes, an all-reduce adds two numbers, which gives the
/// same bits in either order, so the result equals the thread backend's; with more, the order
/// of addition is MPI's (Open MPI gives every process the same result).
///
/// Failures: MPI has no way to tell the others that one process failed. So that nobody waits
/// forever, [`MpiComm::init`] installs a panic hook that prints the panic, naming the rank,
/// then calls `MPI_Abort`, which ends every process of the job; a worker that returns an error
/// should do the same through [`MpiComm::abort`]. What happens to a process that dies of a
/// signal is up to `mpirun` (Open MPI ends the job and says which rank died).
pub struct MpiComm {
    world: SimpleCommunicator,
    // finalizes MPI when dropped, after every collective
    _universe: Universe,
}

impl std::fmt::Debug for MpiComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiComm").field("rank", &self.rank()).field("size", &self.size()).finish()
    }
}

impl MpiComm {
    /// Initializes MPI (once per process) and installs the panic hook described above.
    pub fn init() -> Result<Self, ParallelError> {
        let universe = mpi::initialize().ok_or_else(|| ParallelError::Worker {
            rank: 0,
            message: "MPI is already initialized in this process; expected one MpiComm::init".into(),
        })?;
        let world = universe.world();
        let rank = world.rank();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            eprintln!("MPI rank {rank} panicked; aborting the job");
            previous(info);
            SimpleCommunicator::world().abort(101);
        }));
        Ok(MpiComm { world, _universe: universe })
    }

    /// Ends every process of the job with `code` (`MPI_Abort`), after printing `error` with
    /// this rank.
    pub fn abort(&self, error: &dyn std::fmt::Display, code: i32) -> ! {
        eprintln!("MPI rank {}: {error}; aborting the job", self.rank());
        self.world.abort(code)
    }

    /// Checks that every process passes `len` values to the collective `op`.
    fn same_length(&self, op: &'static str, len: usize) -> Result<(), ParallelError> {
        let mut extremes = [0.0f64; 2];
        self.world.all_reduce_into(
            &[len as f64, -(len as f64)][..],
            &mut extremes[..],
            SystemOperation::max(),
        );
        let (longest, shortest) = (extremes[0] as usize, (-extremes[1]) as usize);
        if longest != len || shortest != len {
            let other_len = if longest != len { longest } else { shortest };
            let rank = self.rank();
            return Err(ParallelError::Length { rank, op, len, other: None, other_len });
        }
        Ok(())
    }
}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn all_reduce_sum<F: Float>(&self, data: &mut [F]) -> Result<(), ParallelError> {
        self.same_length("all_reduce_sum", data.len())?;
        let mine: Vec<f64> = data.iter().map(|x| x.as_f64()).collect();
        let mut sum = vec![0.0f64; data.len()];
        self.world.all_reduce_into(&mine[..], &mut sum[..], SystemOperation::sum());
        data.iter_mut().zip(sum).for_each(|(x, s)| *x = F::of(s));
        Ok(())
    }
    /// The trait's formula (weighted values and the weights summed in `f64`, then divided; a
    /// total weight of 0 gives zeros), with the weighted values converted once, straight into
    /// the buffer MPI sends. The count of invalid weights travels in the same message, so every
    /// process returns the error together.
    fn all_reduce_mean<F: Float>(&self, data: &mut [F], weight: f64) -> Result<(), ParallelError> {
        self.same_length("all_reduce_mean", data.len())?;
        let invalid = f64::from(u8::from(!valid_weight(weight)));
        let mine: Vec<f64> = data.iter().map(|&x| weighted(x, weight)).chain([weight, invalid]).collect();
        let mut sum = vec![0.0f64; mine.len()];
        self.world.all_reduce_into(&mine[..], &mut sum[..], SystemOperation::sum());
        let (total, invalid) = (sum[data.len()], sum[data.len() + 1]);
        if invalid > 0.0 {
            return Err(invalid_weight(self.rank(), weight, None));
        }
        data.iter_mut().zip(&sum).for_each(|(x, &s)| *x = F::of(mean(s, total)));
        Ok(())
    }
    fn broadcast<F: Float>(&self, data: &mut [F], root: usize) -> Result<(), ParallelError> {
        check_root(root, self.size())?;
        self.same_length("broadcast", data.len())?;
        let mut values: Vec<f64> = data.iter().map(|x| x.as_f64()).collect();
        self.world.process_at_rank(root as i32).broadcast_into(&mut values[..]);
        data.iter_mut().zip(values).for_each(|(x, v)| *x = F::of(v));
        Ok(())
    }
    fn barrier(&self) -> Result<(), ParallelError> {
        self.world.barrier();
        Ok(())
    }
}
