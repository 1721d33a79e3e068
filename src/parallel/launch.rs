//! Starting a data-parallel run in one call: [`launch`] runs a closure on every worker, one
//! thread, several threads of this process, or this process of an MPI job, and hands back rank
//! 0's result (PyTorch's `torch.multiprocessing.spawn`, and `torchrun` for MPI). Invariant: a
//! worker that fails ends the run with an error naming its rank, never a hang.

use std::error::Error;
use std::panic::{AssertUnwindSafe, catch_unwind};

#[cfg(feature = "mpi")]
use super::MpiComm;
use super::threads::{panic_message, run_threads};
use super::{Communicator, ParallelError, Single, ThreadComm};
use crate::float::Float;

/// Where the workers of a run are, for [`launch`].
///
/// ```
/// use tapegrad::parallel::{self, Communicator, Workers};
///
/// let size = |workers| parallel::launch(workers, |comm| Ok(comm.size())).unwrap();
/// assert_eq!(size(Workers::Threads(1)), Some(1));
/// assert_eq!(size(Workers::Threads(3)), Some(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// This many threads of this process, each a worker ([`run_threads`]); with 1, the worker
    /// runs on the calling thread with the communicator [`Single`], a plain training loop.
    Threads(usize),
    /// This process is one worker of the MPI job it belongs to, of as many workers as the job
    /// has processes (`mpirun -np W`). Needs the cargo feature `mpi`; without it, [`launch`]
    /// returns [`ParallelError::Launch`] saying so.
    Mpi,
}

/// The communicator [`launch`] gives each worker: [`Single`], a [`ThreadComm`] or, with the
/// `mpi` feature, the process's `MpiComm`, whichever [`Workers`] asked for.
///
/// ```
/// use tapegrad::parallel::{self, Communicator, ParallelError, WorkerComm, Workers};
///
/// // code written for any communicator runs on each
/// fn mean_rank(comm: &impl Communicator) -> Result<f64, ParallelError> {
///     let mut ranks = [comm.rank() as f64];
///     comm.all_reduce_sum(&mut ranks)?;
///     Ok(ranks[0] / comm.size() as f64)
/// }
/// let mean = parallel::launch(Workers::Threads(4), |comm: WorkerComm<'_>| Ok(mean_rank(&comm)?));
/// assert_eq!(mean.unwrap(), Some(1.5)); // (0 + 1 + 2 + 3) / 4
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WorkerComm<'a> {
    backend: Backend<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Backend<'a> {
    Single(Single),
    Threads(ThreadComm<'a>),
    #[cfg(feature = "mpi")]
    Mpi(&'a MpiComm),
}

/// Calls `$call` on the communicator behind `$comm`.
macro_rules! dispatch {
    ($comm:expr, $inner:ident => $call:expr) => {
        match $comm.backend {
            Backend::Single($inner) => $call,
            Backend::Threads($inner) => $call,
            #[cfg(feature = "mpi")]
            Backend::Mpi($inner) => $call,
        }
    };
}

impl Communicator for WorkerComm<'_> {
    fn rank(&self) -> usize {
        dispatch!(self, comm => comm.rank())
    }
    fn size(&self) -> usize {
        dispatch!(self, comm => comm.size())
    }
    fn all_reduce_sum<F: Float>(&self, data: &mut [F]) -> Result<(), ParallelError> {
        dispatch!(self, comm => comm.all_reduce_sum(data))
    }
    fn all_reduce_mean<F: Float>(&self, data: &mut [F], weight: f64) -> Result<(), ParallelError> {
        dispatch!(self, comm => comm.all_reduce_mean(data, weight))
    }
    fn broadcast<F: Float>(&self, data: &mut [F], root: usize) -> Result<(), ParallelError> {
        dispatch!(self, comm => comm.broadcast(data, root))
    }
    fn barrier(&self) -> Result<(), ParallelError> {
        dispatch!(self, comm => comm.barrier())
    }
}

/// Runs `worker` on every worker of `workers`, each with its [`WorkerComm`], and returns rank
/// 0's result: `Some` in the process that holds rank 0 (always, with threads), `None` in an MPI
/// process of another rank.
///
/// The closure is the whole run of one worker, as the function given to PyTorch's
/// `torch.multiprocessing.spawn`: it builds its own tape and model replica, calls
/// [`sync_replicas`](super::sync_replicas), and trains on its [`shard`](super::shard) of each
/// batch. Any error converts with `?`.
///
/// Failures: a worker that returns an error or panics ends the run with
/// [`ParallelError::Worker`] naming its rank (a [`ParallelError`] it returns is passed on as
/// it is); with threads, the others' next collective fails instead of waiting, as in
/// [`run_threads`]. In an MPI job of several processes, MPI cannot tell the others, so a worker
/// that fails prints its error with its rank and ends the whole job (`MPI_Abort`, see
/// `MpiComm`); a panic does the same through `MpiComm`'s panic hook. [`ParallelError::Launch`]
/// if `Workers::Threads(0)`, or `Workers::Mpi` in a build without the `mpi` feature; MPI is
/// initialized once per process, so a second `Workers::Mpi` launch fails.
///
/// ```
/// use tapegrad::parallel::{self, Communicator, Workers};
///
/// // the sum of 1..=10, each of three workers adding up its shard
/// let total = parallel::launch(Workers::Threads(3), |comm| {
///     let mine = parallel::shard(10, comm.rank(), comm.size());
///     let mut sum = [mine.map(|i| (i + 1) as f64).sum::<f64>()];
///     comm.all_reduce_sum(&mut sum)?;
///     Ok(sum[0])
/// })?;
/// assert_eq!(total, Some(55.0));
///
/// let failed = parallel::launch(Workers::Threads(2), |comm| {
///     if comm.rank() == 1 {
///         return Err("batch 7 is unreadable".into());
///     }
///     comm.barrier()?;
///     Ok(())
/// });
/// assert_eq!(failed.unwrap_err().to_string(), "worker 1 failed: batch 7 is unreadable");
/// # Ok::<(), parallel::ParallelError>(())
/// ```
pub fn launch<T: Send>(
    workers: Workers,
    worker: impl Fn(WorkerComm<'_>) -> Result<T, Box<dyn Error>> + Sync,
) -> Result<Option<T>, ParallelError> {
    match workers {
        Workers::Threads(0) => Err(ParallelError::Launch(
            "Workers::Threads(0): no worker to run; expected at least 1 thread".into(),
        )),
        Workers::Threads(1) => {
            let comm = WorkerComm { backend: Backend::Single(Single) };
            let outcome = catch_unwind(AssertUnwindSafe(|| worker(comm)));
            let result = outcome.unwrap_or_else(|payload| Err(panic_message(payload.as_ref()).into()));
            result.map(Some).map_err(|e| worker_error(0, e))
        }
        Workers::Threads(threads) => {
            let mut results = run_threads(threads, |comm| {
                let rank = comm.rank();
                worker(WorkerComm { backend: Backend::Threads(comm) }).map_err(|e| worker_error(rank, e))
            })?;
            Ok(Some(results.swap_remove(0)))
        }
        Workers::Mpi => launch_mpi(worker),
    }
}

/// A worker's error as the run reports it: a [`ParallelError`] as it is, any other naming
/// `rank`.
fn worker_error(rank: usize, error: Box<dyn Error>) -> ParallelError {
    match error.downcast::<ParallelError>() {
        Ok(error) => *error,
        Err(other) => ParallelError::Worker { rank, message: other.to_string() },
    }
}

#[cfg(feature = "mpi")]
fn launch_mpi<T>(
    worker: impl Fn(WorkerComm<'_>) -> Result<T, Box<dyn Error>>,
) -> Result<Option<T>, ParallelError> {
    let mpi = MpiComm::init()?;
    let rank = mpi.rank();
    match worker(WorkerComm { backend: Backend::Mpi(&mpi) }) {
        Ok(result) => Ok((rank == 0).then_some(result)),
        Err(error) if mpi.size() > 1 => mpi.abort(&worker_error(rank, error), 1),
        Err(error) => Err(worker_error(rank, error)),
    }
}

#[cfg(not(feature = "mpi"))]
fn launch_mpi<T>(
    _worker: impl Fn(WorkerComm<'_>) -> Result<T, Box<dyn Error>>,
) -> Result<Option<T>, ParallelError> {
    Err(ParallelError::Launch(
        "Workers::Mpi in a build without MPI: build with `--features mpi` (needs Open MPI) and run \
         under `mpirun -np W`"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each worker's rank, the number of workers and the sum of every rank, computed by hand.
    fn ranks_and_sum(workers: usize) -> Option<(usize, usize, f64)> {
        launch(Workers::Threads(workers), |comm| {
            let mut sum = [comm.rank() as f32];
            comm.all_reduce_sum(&mut sum)?;
            let mut from_last = [comm.rank() as f64];
            comm.broadcast(&mut from_last, comm.size() - 1)?;
            assert_eq!(from_last[0] as usize, comm.size() - 1);
            Ok((comm.rank(), comm.size(), sum[0] as f64))
        })
        .unwrap()
    }

    #[test]
    fn every_worker_runs_and_rank_0_answers() {
        assert_eq!(ranks_and_sum(1), Some((0, 1, 0.0)));
        assert_eq!(ranks_and_sum(2), Some((0, 2, 1.0)));
        assert_eq!(ranks_and_sum(4), Some((0, 4, (0..4).sum::<usize>() as f64)));
    }

    #[test]
    fn a_failing_worker_is_named() {
        for threads in [1, 3] {
            let last = threads - 1;
            let returned = launch(Workers::Threads(threads), |comm| {
                if comm.rank() == last {
                    return Err(format!("no batch on worker {last}").into());
                }
                comm.barrier()?;
                Ok(())
            });
            let expected = format!("worker {last} failed: no batch on worker {last}");
            assert_eq!(returned.unwrap_err().to_string(), expected);

            let panicked = launch(Workers::Threads(threads), |comm| {
                if comm.rank() == last {
                    panic!("out of memory");
                }
                comm.barrier()?;
                Ok(())
            });
            assert_eq!(panicked.unwrap_err().to_string(), format!("worker {last} failed: out of memory"));
        }
        // a ParallelError the worker returns is the run's error, as it is
        let mismatch = launch::<()>(Workers::Threads(1), |_| {
            Err(ParallelError::Mismatch { rank: 0, detail: "no weights".into() }.into())
        });
        assert!(matches!(mismatch, Err(ParallelError::Mismatch { rank: 0, .. })), "{mismatch:?}");
    }

    #[test]
    fn no_worker_is_refused() {
        let error = launch(Workers::Threads(0), |_| Ok(())).unwrap_err().to_string();
        assert_eq!(
            error,
            "parallel::launch: Workers::Threads(0): no worker to run; expected at least 1 thread"
        );
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn mpi_without_the_feature_says_how_to_get_it() {
        let error = launch(Workers::Mpi, |_| Ok(())).unwrap_err().to_string();
        assert!(error.starts_with("parallel::launch: Workers::Mpi in a build without MPI"), "{error}");
        assert!(error.contains("--features mpi"), "{error}");
    }
}
