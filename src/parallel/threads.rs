//! The thread backend: W workers in one process, sharing per-rank buffers and a barrier that a
//! failing worker breaks.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use super::{Communicator, ParallelError, check_root, invalid_weight, mean, shard, valid_weight};
use crate::float::Float;

/// Runs `worker` on `workers` threads, each with a [`ThreadComm`] for its rank, and returns
/// their results in rank order.
///
/// A worker that returns an error or panics ends the run: the others' next collective returns
/// [`ParallelError::PeerFailed`], and `run_threads` returns the failing worker's error (the
/// lowest rank's, if several fail), never hangs.
///
/// Each worker runs its ops on a rayon pool of its own with `T / workers` threads (at least
/// 1), where `T` is the size of the global pool (the cores, or `RAYON_NUM_THREADS`), so W
/// workers and their ops' threads do not oversubscribe the cores.
///
/// [`ParallelError::Argument`] if `workers` is 0.
///
/// ```
/// use tapegrad::parallel::{run_threads, Communicator, ParallelError};
/// let sums = run_threads(3, |comm| {
///     let mut x = [comm.rank() as f64, 1.0];
///     comm.all_reduce_sum(&mut x)?;
///     Ok(x)
/// })
/// .unwrap();
/// assert_eq!(sums, [[3.0, 3.0]; 3]);
///
/// let failed = run_threads(2, |comm| {
///     if comm.rank() == 1 {
///         panic!("out of data");
///     }
///     comm.barrier()?;
///     Ok(())
/// });
/// assert_eq!(failed.unwrap_err().to_string(), "worker 1 failed: out of data");
///
/// let none = run_threads(0, |_| Ok(()));
/// assert_eq!(none.unwrap_err().to_string(), "run_threads: workers = 0; expected at least 1 worker");
/// ```
pub fn run_threads<T: Send>(
    workers: usize,
    worker: impl Fn(ThreadComm<'_>) -> Result<T, ParallelError> + Sync,
) -> Result<Vec<T>, ParallelError> {
    if workers == 0 {
        let message = "workers = 0; expected at least 1 worker".into();
        return Err(ParallelError::Argument { op: "run_threads", message });
    }
    let shared = Shared::new(workers);
    let per_worker = (rayon::current_num_threads() / workers).max(1);
    let results: Vec<Result<T, ParallelError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|rank| {
                let (shared, worker) = (&shared, &worker);
                s.spawn(move || {
                    let comm = ThreadComm { rank, shared };
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(per_worker).build();
                    let run = || catch_unwind(AssertUnwindSafe(|| worker(comm)));
                    let outcome = match &pool {
                        Ok(pool) => pool.install(run),
                        Err(_) => run(),
                    };
                    let result = outcome.unwrap_or_else(|payload| {
                        Err(ParallelError::Worker { rank, message: panic_message(payload.as_ref()) })
                    });
                    match &result {
                        Ok(_) => shared.fail(rank, "returned without joining it"),
                        Err(ParallelError::PeerFailed { .. }) => {}
                        Err(_) => shared.fail(rank, "failed"),
                    }
                    result
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker panics are caught")).collect()
    });
    // a worker's own error outranks the ones it caused in the others; then the lowest rank
    let own = |rank: usize, e: &ParallelError| match e {
        ParallelError::PeerFailed { .. } => false,
        ParallelError::Mismatch { rank: about, .. } => *about == rank,
        _ => true,
    };
    let mut out = Vec::with_capacity(workers);
    let mut errors = Vec::new();
    for (rank, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => out.push(value),
            Err(e) => errors.push((!own(rank, &e), rank, e)),
        }
    }
    match errors.into_iter().min_by_key(|&(derived, rank, _)| (derived, rank)) {
        None => Ok(out),
        Some((
            _,
            _,
            e @ (ParallelError::Worker { .. }
            | ParallelError::PeerFailed { .. }
            | ParallelError::Mismatch { .. }),
        )) => Err(e),
        Some((_, rank, other)) => Err(ParallelError::Worker { rank, message: other.to_string() }),
    }
}

/// The message a panic was raised with.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The [`Communicator`] of one worker thread of [`run_threads`].
#[derive(Clone, Copy)]
pub struct ThreadComm<'a> {
    rank: usize,
    shared: &'a Shared,
}

impl std::fmt::Debug for ThreadComm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadComm").field("rank", &self.rank).field("size", &self.shared.size).finish()
    }
}

/// Barrier polls before a worker blocks: most waits in a training step are short (the other
/// worker is finishing the same work), and waking a blocked thread costs more than they last.
const SPINS: u32 = 20_000;

/// What the worker threads share: a barrier that a failing worker breaks, and per rank a
/// buffer for its data and one for the part of the result it computes.
#[derive(Debug)]
pub(crate) struct Shared {
    size: usize,
    arrived: AtomicUsize,
    generation: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<(usize, &'static str)>>,
    changed: Condvar,
    inputs: Vec<RwLock<Vec<f64>>>,
    outputs: Vec<RwLock<Vec<f64>>>,
    /// Each worker's values and weight for `all_reduce_mean`, then its share of the means, in
    /// the element type they came in.
    shares: Vec<RwLock<Option<Arc<dyn Any + Send + Sync>>>>,
    means: Vec<RwLock<Option<Arc<dyn Any + Send + Sync>>>>,
}

impl Shared {
    fn new(size: usize) -> Self {
        let buffers = || (0..size).map(|_| RwLock::new(Vec::new())).collect();
        Shared {
            size,
            arrived: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            changed: Condvar::new(),
            inputs: buffers(),
            outputs: buffers(),
            shares: (0..size).map(|_| RwLock::new(None)).collect(),
            means: (0..size).map(|_| RwLock::new(None)).collect(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<(usize, &'static str)>> {
        // nothing panics while holding the lock, but stay usable if something did
        self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes every collective from now on return `PeerFailed`, naming `rank` and `what` it
    /// did (unless another worker failed first).
    fn fail(&self, rank: usize, what: &'static str) {
        let mut failure = self.lock();
        failure.get_or_insert((rank, what));
        self.failed.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    fn failure(&self, rank: usize, during: &'static str) -> Option<ParallelError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let (failed, what) = self.lock().expect("set before the flag");
        Some(ParallelError::PeerFailed { rank, during, failed, what })
    }

    /// Waits for every worker; `PeerFailed` if one fails first.
    fn wait(&self, rank: usize, during: &'static str) -> Result<(), ParallelError> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(e) = self.failure(rank, during) {
            return Err(e);
        }
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.size {
            self.arrived.store(0, Ordering::Release);
            let _failure = self.lock(); // so that a worker about to block sees the change
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.changed.notify_all();
            return Ok(());
        }
        let passed = || self.generation.load(Ordering::Acquire) != generation;
        for spin in 0..SPINS {
            if passed() {
                return Ok(());
            }
            if spin % 64 == 63 {
                if let Some(e) = self.failure(rank, during) {
                    return Err(e);
                }
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
        let mut failure = self.lock();
        while !passed() {
            if let Some((failed, what)) = *failure {
                return Err(ParallelError::PeerFailed { rank, during, failed, what });
            }
            failure = self.changed.wait(failure).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        Ok(())
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ThreadComm<'_> {
    /// Puts `data` in this rank's input buffer and waits for every worker; then checks that all
    /// passed as many values.
    fn publish<F: Float>(&self, op: &'static str, data: &[F]) -> Result<(), ParallelError> {
        {
            let mut mine = write(&self.shared.inputs[self.rank]);
            mine.clear();
            mine.extend(data.iter().map(|x| x.as_f64()));
        }
        self.shared.wait(self.rank, op)?;
        let lengths = self.shared.inputs.iter().map(|b| read(b).len()).enumerate();
        if let Some((other, other_len)) = lengths.clone().find(|&(_, n)| n != data.len()) {
            let (rank, len) = (self.rank, data.len());
            self.shared.fail(rank, "failed");
            return Err(ParallelError::Length { rank, op, len, other: Some(other), other_len });
        }
        Ok(())
    }
}

impl Communicator for ThreadComm<'_> {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    /// Each worker adds up its own share of the positions over every worker's data, in rank
    /// order; then each copies every share.
    fn all_reduce_sum<F: Float>(&self, data: &mut [F]) -> Result<(), ParallelError> {
        const OP: &str = "all_reduce_sum";
        self.publish(OP, data)?;
        let (n, size) = (data.len(), self.shared.size);
        {
            let inputs: Vec<_> = self.shared.inputs.iter().map(read).collect();
            let mut sums = write(&self.shared.outputs[self.rank]);
            let mine = shard(n, self.rank, size);
            sums.clear();
            sums.extend_from_slice(&inputs[0][mine.clone()]);
            for input in &inputs[1..] {
                sums.iter_mut().zip(&input[mine.clone()]).for_each(|(s, &x)| *s += x);
            }
        }
        self.shared.wait(self.rank, OP)?;
        for (rank, output) in self.shared.outputs.iter().enumerate() {
            let part = &mut data[shard(n, rank, size)];
            part.iter_mut().zip(read(output).iter()).for_each(|(x, &s)| *x = F::of(s));
        }
        // nobody writes a buffer again before everyone has read it
        self.shared.wait(self.rank, OP)
    }
    /// Each worker publishes its values as they are (in `F`, not widened: a third of the
    /// bytes), computes the means of its own share of the positions, and copies every share.
    ///
    /// NOTE: moving the gradients as `f64` through `all_reduce_sum` instead (widened,
    /// published, summed, copied back, divided) adds a large share to a training step
    /// (`RAYON_NUM_THREADS=1 cargo bench --bench data_parallel`; docs/PERFORMANCE.md).
    fn all_reduce_mean<F: Float>(&self, data: &mut [F], weight: f64) -> Result<(), ParallelError> {
        const OP: &str = "all_reduce_mean";
        let (n, size) = (data.len(), self.shared.size);
        let published: Arc<dyn Any + Send + Sync> = Arc::new((data.to_vec(), weight));
        *write(&self.shared.shares[self.rank]) = Some(published);
        self.shared.wait(self.rank, OP)?;
        let shares: Vec<Arc<dyn Any + Send + Sync>> =
            self.shared.shares.iter().map(|s| read(s).clone().expect("published before the wait")).collect();
        let mut inputs = Vec::with_capacity(size);
        for (other, share) in shares.iter().enumerate() {
            let Some((values, weight)) = share.downcast_ref::<(Vec<F>, f64)>() else {
                self.shared.fail(self.rank, "failed");
                let detail =
                    format!("{OP} of {} values, but worker {other} passed another element type", F::NAME);
                return Err(ParallelError::Mismatch { rank: self.rank, detail });
            };
            if values.len() != n {
                self.shared.fail(self.rank, "failed");
                let (rank, other_len) = (self.rank, values.len());
                return Err(ParallelError::Length { rank, op: OP, len: n, other: Some(other), other_len });
            }
            inputs.push((values.as_slice(), *weight));
        }
        // every worker sees every weight, so all return the same error together
        if let Some((other, &(_, bad))) = inputs.iter().enumerate().find(|(_, (_, w))| !valid_weight(*w)) {
            return Err(invalid_weight(self.rank, weight, Some((other, bad))));
        }
        let total = inputs[1..].iter().fold(inputs[0].1, |sum, &(_, w)| sum + w);
        // this worker's positions, a block at a time: every worker's products added in rank
        // order into sums that stay in cache
        let share = shard(n, self.rank, size);
        let mut mine = Vec::with_capacity(share.len());
        let mut sums = [0.0f64; 512];
        for start in share.clone().step_by(sums.len()) {
            let block = start..share.end.min(start + sums.len());
            let sums = &mut sums[..block.len()];
            // a worker of weight 0 adds nothing, not even the NaN of an empty batch's loss
            match inputs[0] {
                (_, 0.0) => sums.fill(0.0),
                (first, weight) => {
                    sums.iter_mut().zip(&first[block.clone()]).for_each(|(s, &x)| *s = x.as_f64() * weight)
                }
            }
            for &(values, weight) in inputs[1..].iter().filter(|&&(_, weight)| weight != 0.0) {
                sums.iter_mut().zip(&values[block.clone()]).for_each(|(s, &x)| *s += x.as_f64() * weight);
            }
            mine.extend(sums.iter().map(|&s| F::of(mean(s, total))));
        }
        let mine: Arc<dyn Any + Send + Sync> = Arc::new(mine);
        *write(&self.shared.means[self.rank]) = Some(mine);
        self.shared.wait(self.rank, OP)?;
        for (rank, means) in self.shared.means.iter().enumerate() {
            let means = read(means).clone().expect("published before the wait");
            let means = means.downcast_ref::<Vec<F>>().expect("every worker's element type was checked");
            data[shard(n, rank, size)].copy_from_slice(means);
        }
        // no third wait: a worker replaces its means only after the next call's first wait,
        // which every worker reaches after copying these
        Ok(())
    }
    fn broadcast<F: Float>(&self, data: &mut [F], root: usize) -> Result<(), ParallelError> {
        if let Err(e) = check_root(root, self.shared.size) {
            self.shared.fail(self.rank, "failed"); // the others must not wait for this worker
            return Err(e);
        }
        self.publish("broadcast", data)?;
        data.iter_mut().zip(read(&self.shared.inputs[root]).iter()).for_each(|(x, &v)| *x = F::of(v));
        self.shared.wait(self.rank, "broadcast")
    }
    fn barrier(&self) -> Result<(), ParallelError> {
        self.shared.wait(self.rank, "barrier")
    }
}
