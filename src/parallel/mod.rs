//! Data-parallel training: the same model on several workers, each computing the gradients of
//! its share of every batch; the gradients are summed across workers and every worker applies
//! the same update, so the replicas stay identical (PyTorch's `DistributedDataParallel`).
//!
//! A [`Communicator`] is what the workers share: their `rank` and `size`, and the collectives
//! [`all_reduce_sum`](Communicator::all_reduce_sum), [`broadcast`](Communicator::broadcast)
//! and [`barrier`](Communicator::barrier). [`run_threads`] runs W workers as threads of one
//! process, each with its own tape and model replica ([`ThreadComm`], no system dependency);
//! with the `mpi` feature, `MpiComm` runs them as MPI processes. [`launch`] starts a run in one
//! call on whichever [`Workers`] a command line chose (one thread, W threads, or this process
//! of an MPI job) and returns rank 0's result, as PyTorch's `torch.multiprocessing.spawn`.
//!
//! A step, on each worker:
//!
//! 1. take its [`shard`] of the global batch;
//! 2. compute the loss (the mean over its samples) and its gradients;
//! 3. [`all_reduce_gradients`]: the mean gradient over the global batch, the same on every
//!    worker;
//! 4. the optimizer's step.
//!
//! [`sync_replicas`] starts a run: it checks that every replica has the same parameter and
//! buffer names and shapes (an error names the rank and each difference) and copies rank 0's
//! values to the others.
//!
//! ```
//! use tapegrad::nn::{self, Linear, Module};
//! use tapegrad::optim::{Optimizer, Sgd};
//! use tapegrad::parallel::{self, Communicator};
//!
//! let x = ndarray::array![[1.0], [2.0], [3.0], [4.0]];
//! let y = ndarray::array![[2.0], [4.0], [6.0], [8.0]];
//! let weights = parallel::run_threads(2, |comm| {
//!     let tape = tapegrad::Tape::<f64>::new();
//!     // each replica starts from its own weights; sync_replicas copies rank 0's
//!     let start = comm.rank() as f64;
//!     let model = Linear::from_arrays(&tape, ndarray::array![[start]], ndarray::array![0.0]);
//!     parallel::sync_replicas(&comm, &tape, &model)?;
//!     let mut sgd = Sgd::new(nn::params(&model), 0.05);
//!     for _ in 0..100 {
//!         let rows = parallel::shard(x.nrows(), comm.rank(), comm.size());
//!         let (xs, ys) = (x.slice(ndarray::s![rows.clone(), ..]), y.slice(ndarray::s![rows.clone(), ..]));
//!         let loss = nn::mean_squared_error(model.forward(tape.constant(xs.to_owned())), tape.constant(ys.to_owned()));
//!         let mut grads = loss.backward();
//!         parallel::all_reduce_gradients(&comm, &tape, &nn::params(&model), &mut grads, rows.len())?;
//!         sgd.step(&tape, &grads);
//!         tape.reset();
//!     }
//!     Ok(tape.get(model.weight).to_array()[[0, 0]])
//! })
//! .unwrap();
//! assert_eq!(weights[0], weights[1], "the replicas stay identical");
//! assert!((weights[0] - 2.0).abs() < 0.05, "{weights:?}");
//! ```

use std::ops::Range;

use crate::float::Float;
use crate::nn::{self, Module};
use crate::state::{Entry, StateError};
use crate::tape::{Gradients, Param, Tape};
use crate::value::Value;

mod launch;
#[cfg(feature = "mpi")]
mod mpi;
mod threads;

#[cfg(feature = "mpi")]
pub use self::mpi::MpiComm;
pub use launch::{WorkerComm, Workers, launch};
pub use threads::{ThreadComm, run_threads};

/// What the workers of a data-parallel run share.
///
/// Every worker must call the same collectives in the same order with buffers of the same
/// length; a worker that fails makes the others' collectives return
/// [`ParallelError::PeerFailed`] (the thread backend) instead of waiting forever.
pub trait Communicator {
    /// This worker's number, from 0 to `size() − 1`.
    fn rank(&self) -> usize;
    /// The number of workers.
    fn size(&self) -> usize;
    /// Replaces `data`, on every worker, by the element-wise sum of every worker's `data`,
    /// added in rank order (in `f64`), so each worker gets the same bits.
    fn all_reduce_sum<F: Float>(&self, data: &mut [F]) -> Result<(), ParallelError>;
    /// Replaces `data`, on every worker, by the weighted mean of every worker's `data`,
    /// `Σ wᵣ·xᵣ / Σ wᵣ` with `weight` this worker's `wᵣ`: the products and both sums in `f64`,
    /// added in rank order, and the quotient rounded to `F` once, so each worker gets the same
    /// bits. This default moves `f64` values through
    /// [`all_reduce_sum`](Communicator::all_reduce_sum); the thread backend moves `F`.
    ///
    /// Every weight must be a finite number ≥ 0: otherwise every worker returns
    /// [`ParallelError::Argument`] and `data` is left as it is. When the weights add up to 0
    /// (a global batch of no samples), the mean is 0 everywhere: the gradients of an empty
    /// batch, which is what a plain loop computes from one (zero gradients, not NaN).
    ///
    /// ```
    /// use tapegrad::parallel::{Communicator, run_threads};
    /// let means = run_threads(2, |comm| {
    ///     let (mut x, weight) = if comm.rank() == 0 { ([1.0f32, 2.0], 1.0) } else { ([4.0, 8.0], 3.0) };
    ///     comm.all_reduce_mean(&mut x, weight)?;
    ///     Ok(x)
    /// })
    /// .unwrap();
    /// assert_eq!(means, vec![[3.25, 6.5], [3.25, 6.5]]); // (1 + 3·4)/4, (2 + 3·8)/4
    ///
    /// // no samples on any worker: zeros, not 0/0
    /// let empty = run_threads(2, |comm| {
    ///     let mut x = [0.0f64, 0.0];
    ///     comm.all_reduce_mean(&mut x, 0.0)?;
    ///     Ok(x)
    /// });
    /// assert_eq!(empty.unwrap(), vec![[0.0, 0.0]; 2]);
    /// ```
    fn all_reduce_mean<F: Float>(&self, data: &mut [F], weight: f64) -> Result<(), ParallelError> {
        let mut flat: Vec<f64> = data.iter().map(|&x| weighted(x, weight)).collect();
        // the weights' sum, and how many workers passed a weight that is not one
        flat.extend([weight, f64::from(u8::from(!valid_weight(weight)))]);
        self.all_reduce_sum(&mut flat)?;
        let invalid = flat.pop().expect("the count of invalid weights");
        let total = flat.pop().expect("the weights' sum");
        if invalid > 0.0 {
            return Err(invalid_weight(self.rank(), weight, None));
        }
        data.iter_mut().zip(&flat).for_each(|(x, &sum)| *x = F::of(mean(sum, total)));
        Ok(())
    }
    /// Replaces `data`, on every worker, by `root`'s; [`ParallelError::Argument`] if `root` is
    /// not a rank (`0..size()`).
    fn broadcast<F: Float>(&self, data: &mut [F], root: usize) -> Result<(), ParallelError>;
    /// Waits until every worker has called it.
    fn barrier(&self) -> Result<(), ParallelError>;
}

/// The communicator of a run with one worker: every collective leaves its data as it is (but
/// for the rules of [`all_reduce_mean`](Communicator::all_reduce_mean) on weights). A training
/// loop written for a [`Communicator`] runs unchanged on one worker with it.
///
/// ```
/// use tapegrad::parallel::{Communicator, Single};
/// let mut x = [1.0f32, 2.0];
/// Single.all_reduce_sum(&mut x).unwrap();
/// assert_eq!((Single.rank(), Single.size(), x), (0, 1, [1.0, 2.0]));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Communicator for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum<F: Float>(&self, _data: &mut [F]) -> Result<(), ParallelError> {
        Ok(())
    }
    /// The data as they are, as the trait's rules give for one worker: zeros for a weight of
    /// 0, [`ParallelError::Argument`] for a weight that is negative, NaN or infinite.
    fn all_reduce_mean<F: Float>(&self, data: &mut [F], weight: f64) -> Result<(), ParallelError> {
        if !valid_weight(weight) {
            return Err(invalid_weight(0, weight, None));
        }
        if weight == 0.0 {
            data.fill(F::zero());
        }
        Ok(())
    }
    fn broadcast<F: Float>(&self, _data: &mut [F], root: usize) -> Result<(), ParallelError> {
        check_root(root, 1)
    }
    fn barrier(&self) -> Result<(), ParallelError> {
        Ok(())
    }
}

/// What went wrong in a data-parallel run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParallelError {
    /// A worker returned an error or panicked.
    #[error("worker {rank} failed: {message}")]
    Worker {
        /// The worker's rank.
        rank: usize,
        /// Its error, or its panic's message.
        message: String,
    },
    /// Another worker failed, so a collective on this one could not complete.
    #[error("worker {rank} stopped in {during}: worker {failed} {what}")]
    PeerFailed {
        /// This worker's rank.
        rank: usize,
        /// The collective it was in.
        during: &'static str,
        /// The rank that failed.
        failed: usize,
        /// What it did: "failed", or "returned without joining it" (a worker that ends its
        /// run while another still waits for it in a collective).
        what: &'static str,
    },
    /// The replicas differ: another parameter name, shape or count than rank 0's.
    #[error("worker {rank}'s model differs from worker 0's: {detail}")]
    Mismatch {
        /// The rank whose replica differs.
        rank: usize,
        /// Every difference, or which ranks differ.
        detail: String,
    },
    /// Workers called a collective with buffers of different lengths.
    #[error(
        "worker {rank}: {op} with {len} values, but {} passed {other_len}",
        other.map_or("another worker".to_string(), |r| format!("worker {r}"))
    )]
    Length {
        /// This worker's rank.
        rank: usize,
        /// The collective.
        op: &'static str,
        /// This worker's length.
        len: usize,
        /// A worker whose length differs, if known (MPI tells only the length).
        other: Option<usize>,
        /// Its length.
        other_len: usize,
    },
    /// A model's state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// [`launch`] could not start the workers: none asked for, or MPI in a build without it.
    #[error("parallel::launch: {0}")]
    Launch(String),
    /// An argument is out of range: no workers, a rank or root that is not one of the
    /// workers', a weight that is not a finite number ≥ 0.
    #[error("{op}: {message}")]
    Argument {
        /// The function or collective.
        op: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
}

/// Whether `weight` can weigh a worker's values in a mean.
pub(crate) fn valid_weight(weight: f64) -> bool {
    weight.is_finite() && weight >= 0.0
}

/// A worker's value times its weight, in `f64`; 0 for a weight of 0, so that a worker without
/// samples adds nothing, not even the NaN of its empty batch's loss.
#[inline]
pub(crate) fn weighted<F: Float>(x: F, weight: f64) -> f64 {
    if weight == 0.0 { 0.0 } else { x.as_f64() * weight }
}

/// The weighted mean of a position: `sum / total`, and 0 when no worker has any weight.
#[inline]
pub(crate) fn mean(sum: f64, total: f64) -> f64 {
    if total == 0.0 { 0.0 } else { sum / total }
}

/// The error of an `all_reduce_mean` in which a worker passed an invalid weight: that worker's
/// rank and weight when known (`about`), else this worker's if it is the invalid one.
pub(crate) fn invalid_weight(rank: usize, weight: f64, about: Option<(usize, f64)>) -> ParallelError {
    let expected = "expected a finite number ≥ 0 (the worker's number of samples)";
    let message = match about {
        Some((other, weight)) => format!("worker {other} passed the weight {weight}; {expected}"),
        None if !valid_weight(weight) => format!("worker {rank} passed the weight {weight}; {expected}"),
        None => format!("another worker passed a negative, NaN or infinite weight; {expected}"),
    };
    ParallelError::Argument { op: "all_reduce_mean", message }
}

/// [`ParallelError::Argument`] unless `root` is one of `size` ranks.
pub(crate) fn check_root(root: usize, size: usize) -> Result<(), ParallelError> {
    if root < size {
        return Ok(());
    }
    let message = format!("root {root}; expected a rank in 0..{size} (one per worker)");
    Err(ParallelError::Argument { op: "broadcast", message })
}

/// The rows of a batch of `n` that worker `rank` of `size` takes: contiguous, in rank order,
/// the first `n % size` workers taking one more. The shards of ranks `0..size` cover `0..n`
/// exactly once.
///
/// Panics at the caller's line if `size` is 0 or `rank` is not in `0..size`; see
/// [`try_shard`].
///
/// ```
/// use tapegrad::parallel::shard;
/// assert_eq!([shard(10, 0, 3), shard(10, 1, 3), shard(10, 2, 3)], [0..4, 4..7, 7..10]);
/// ```
#[track_caller]
pub fn shard(n: usize, rank: usize, size: usize) -> Range<usize> {
    match try_shard(n, rank, size) {
        Ok(rows) => rows,
        Err(e) => panic!("{e}"),
    }
}

/// Like [`shard`], returning [`ParallelError::Argument`] instead of panicking when `size` is 0
/// or `rank` is not in `0..size`.
///
/// ```
/// use tapegrad::parallel::try_shard;
/// assert_eq!(try_shard(10, 1, 3).unwrap(), 4..7);
/// let e = try_shard(10, 3, 2).unwrap_err();
/// assert_eq!(e.to_string(), "shard: rank 3 of 2 workers; expected a rank in 0..2");
/// assert!(try_shard(10, 0, 0).is_err());
/// ```
pub fn try_shard(n: usize, rank: usize, size: usize) -> Result<Range<usize>, ParallelError> {
    if rank >= size {
        let expected =
            if size == 0 { "at least 1 worker".to_string() } else { format!("a rank in 0..{size}") };
        let message = format!("rank {rank} of {size} workers; expected {expected}");
        return Err(ParallelError::Argument { op: "shard", message });
    }
    let (base, extra) = (n / size, n % size);
    // rank < size, so rank·base ≤ n and rank.min(extra) < size: no overflow, and the shard
    // ends at n at the latest
    let start = rank * base + rank.min(extra);
    Ok(start..start + base + usize::from(rank < extra))
}

/// Averages the gradients of `params` over the workers, weighting each worker's by its number
/// of `samples`: with each worker's loss the mean over its own samples, every worker ends with
/// the gradient of the mean loss over the global batch. A parameter without a gradient on a
/// worker counts as zero there; afterwards every parameter has one on every worker. Row-sparse
/// gradients are made dense first.
///
/// With one worker, the gradients are left exactly as they are. A worker with no samples adds
/// nothing to the mean (its gradients, even NaN ones, are ignored); when no worker has any
/// (a global batch of 0 samples), every gradient is zeros, as a plain loop computes from an
/// empty batch, so the optimizer's step does what it does with zero gradients.
///
/// Summation: each worker's gradient times its sample count, summed in rank order in `f64`,
/// divided by the total count, then rounded to `F`.
pub fn all_reduce_gradients<F: Float>(
    comm: &impl Communicator,
    tape: &Tape<F>,
    params: &[Param],
    grads: &mut Gradients<F>,
    samples: usize,
) -> Result<(), ParallelError> {
    if comm.size() == 1 {
        return Ok(()); // the gradients are already the mean over the whole batch
    }
    // NOTE: one collective per parameter, on the gradient's own storage: gathering them into
    // one buffer first and back afterwards moves every value twice more, measurably slower
    // (`RAYON_NUM_THREADS=1 cargo bench --bench data_parallel`; docs/PERFORMANCE.md).
    let weight = samples as f64;
    for &p in params {
        match grads.param_mut(p) {
            Some(g) => {
                let mut view = g.view_mut();
                match view.as_slice_mut() {
                    Some(values) => comm.all_reduce_mean(values, weight)?,
                    None => {
                        let mut values: Vec<F> = view.iter().copied().collect();
                        comm.all_reduce_mean(&mut values, weight)?;
                        view.iter_mut().zip(values).for_each(|(g, v)| *g = v);
                    }
                }
            }
            None => {
                let shape = tape.get(p).shape().to_vec();
                let mut values = vec![F::zero(); shape.iter().product()];
                comm.all_reduce_mean(&mut values, weight)?;
                let array = ndarray::ArrayD::from_shape_vec(shape, values).expect("the parameter's length");
                grads.set_param(tape, p, Value::from(array));
            }
        }
    }
    Ok(())
}

/// Starts a data-parallel run: checks that every worker's `module` has rank 0's parameter and
/// buffer names and shapes, then copies rank 0's values to every worker. On a difference,
/// every worker returns [`ParallelError::Mismatch`]: the differing ranks with each difference,
/// the others naming the ranks that differ.
pub fn sync_replicas<F: Float>(
    comm: &impl Communicator,
    tape: &Tape<F>,
    module: &impl Module<F>,
) -> Result<(), ParallelError> {
    let (rank, size) = (comm.rank(), comm.size());
    let state = nn::state_dict(tape, module)?;
    // rank 0's names and shapes, as bytes, to every worker
    let layout: String = state.iter().map(|(name, e)| format!("{name}\t{}\n", e.describe())).collect();
    let mut len = [if rank == 0 { layout.len() as f64 } else { 0.0 }];
    comm.broadcast(&mut len, 0)?;
    let mut bytes: Vec<f64> =
        if rank == 0 { layout.bytes().map(f64::from).collect() } else { vec![0.0; len[0] as usize] };
    comm.broadcast(&mut bytes, 0)?;
    let theirs = String::from_utf8(bytes.iter().map(|&b| b as u8).collect()).unwrap_or_default();
    let expected = theirs.lines().filter_map(|line| line.split_once('\t')).map(|(n, d)| (n, d.to_string()));
    let mismatches = state.mismatches(expected);
    // every worker learns which ranks differ, so all stop together
    let mut differ = vec![0.0; size];
    differ[rank] = if mismatches.is_empty() { 0.0 } else { 1.0 };
    comm.all_reduce_sum(&mut differ)?;
    if !mismatches.is_empty() {
        let detail = mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(ParallelError::Mismatch { rank, detail });
    }
    if let Some(first) = differ.iter().position(|&d| d > 0.0) {
        let ranks: Vec<usize> = (0..size).filter(|&r| differ[r] > 0.0).collect();
        return Err(ParallelError::Mismatch { rank: first, detail: format!("workers {ranks:?} differ") });
    }
    // every value from rank 0, in one buffer
    let mut flat: Vec<F> = state
        .iter()
        .flat_map(|(_, e)| match e {
            Entry::Tensor(a) => a.iter().copied().collect::<Vec<F>>(),
            _ => Vec::new(),
        })
        .collect();
    comm.broadcast(&mut flat, 0)?;
    let mut synced = state.clone();
    let mut at = 0;
    for (name, entry) in state.iter() {
        if let Entry::Tensor(a) = entry {
            let values = flat[at..at + a.len()].to_vec();
            at += a.len();
            let array = ndarray::ArrayD::from_shape_vec(a.raw_dim(), values).expect("same length");
            synced.insert(name, Entry::Tensor(array));
        }
    }
    nn::load_state_dict(tape, module, &synced)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A communicator with only the required collectives: `all_reduce_mean` is the trait's.
    struct SumOnly<'a>(ThreadComm<'a>);

    impl Communicator for SumOnly<'_> {
        fn rank(&self) -> usize {
            self.0.rank()
        }
        fn size(&self) -> usize {
            self.0.size()
        }
        fn all_reduce_sum<F: Float>(&self, data: &mut [F]) -> Result<(), ParallelError> {
            self.0.all_reduce_sum(data)
        }
        fn broadcast<F: Float>(&self, data: &mut [F], root: usize) -> Result<(), ParallelError> {
            self.0.broadcast(data, root)
        }
        fn barrier(&self) -> Result<(), ParallelError> {
            self.0.barrier()
        }
    }

    #[test]
    fn the_default_mean_gives_zeros_without_weight_and_refuses_a_bad_weight_everywhere() {
        let out = run_threads(2, |comm| {
            let comm = SumOnly(comm);
            let mut none = [[f64::NAN, 1.0][comm.rank()], 2.0];
            comm.all_reduce_mean(&mut none, 0.0)?;
            // rank 0 has no samples: its NaN adds nothing
            let mut one = [[f32::NAN, 4.0][comm.rank()], [f32::INFINITY, -2.0][comm.rank()]];
            comm.all_reduce_mean(&mut one, [0.0, 3.0][comm.rank()])?;
            let bad = comm.all_reduce_mean(&mut [1.0f64], [1.0, -1.0][comm.rank()]);
            Ok((none, one, bad.unwrap_err().to_string()))
        })
        .unwrap();
        // one worker: the same rules
        let mut one = [f64::NAN, 3.0];
        Single.all_reduce_mean(&mut one, 2.0).unwrap();
        assert_eq!(one[1], 3.0);
        Single.all_reduce_mean(&mut one, 0.0).unwrap();
        assert_eq!(one, [0.0, 0.0]);
        let e = Single.all_reduce_mean(&mut one, f64::INFINITY).unwrap_err().to_string();
        assert!(e.starts_with("all_reduce_mean: worker 0 passed the weight inf;"), "{e}");
        let expected = "expected a finite number ≥ 0 (the worker's number of samples)";
        assert_eq!(
            out,
            [
                (
                    [0.0, 0.0],
                    [4.0, -2.0],
                    format!(
                        "all_reduce_mean: another worker passed a negative, NaN or infinite weight; {expected}"
                    )
                ),
                (
                    [0.0, 0.0],
                    [4.0, -2.0],
                    format!("all_reduce_mean: worker 1 passed the weight -1; {expected}")
                ),
            ]
        );
    }
}
