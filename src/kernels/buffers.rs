//! Recycled array buffers: a thread's large freed values are kept and handed to the next ops
//! that need as much room, instead of going back to the system allocator, as PyTorch's caching
//! allocator does. Without it, glibc returns a training step's large blocks to the kernel when
//! the tape is reset, and the next step faults them back in page by page, zeroed
//! (`cargo bench --bench conv_step` shows the difference; `docs/PERFORMANCE.md` has the figures).
//!
//! Only buffers of at least [`MIN_BYTES`] are kept (smaller ones are cheap to allocate), at most
//! [`MAX_BUFFERS`] of them and [`MAX_BYTES`] in all per thread and element type, the one kept
//! longest going first; a request takes the smallest kept buffer that holds it without wasting
//! more than half of it. Element types: `f32`, `f64` and `usize` (index arrays); each has its
//! own pool per thread, found by the type's `TypeId`, so the element type needs no hook for it.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::thread::LocalKey;

use crate::error::{Error, Result};
use crate::float::Float;

/// Smaller buffers go straight back to the allocator.
pub(crate) const MIN_BYTES: usize = 64 * 1024;
/// At most this many buffers are kept per thread and element type.
pub(crate) const MAX_BUFFERS: usize = 64;
/// At most this many bytes are kept per thread and element type.
pub(crate) const MAX_BYTES: usize = 512 * 1024 * 1024;

/// The kept buffers of one element type on one thread.
#[derive(Debug)]
struct Pool<T> {
    buffers: Vec<Vec<T>>,
    bytes: usize,
}

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool { buffers: Vec::new(), bytes: 0 }
    }
}

thread_local! {
    static F32: RefCell<Pool<f32>> = const { RefCell::new(Pool::new()) };
    static F64: RefCell<Pool<f64>> = const { RefCell::new(Pool::new()) };
    static INDICES: RefCell<Pool<usize>> = const { RefCell::new(Pool::new()) };
}

/// Runs `f` on this thread's pool of `T` (`f32`, `f64` or `usize`); `None` for another type, or
/// when the pool is gone (during thread exit, when a freed buffer simply goes to the allocator).
fn with_pool<T: Copy + 'static, R>(f: impl FnOnce(&mut Pool<T>) -> R) -> Option<R> {
    fn on<T: 'static, U: 'static, R>(
        pool: &'static LocalKey<RefCell<Pool<U>>>,
        f: impl FnOnce(&mut Pool<T>) -> R,
    ) -> Option<R> {
        let run = |pool: &RefCell<Pool<U>>| {
            let mut pool = pool.borrow_mut();
            (&mut *pool as &mut dyn Any).downcast_mut::<Pool<T>>().map(f)
        };
        pool.try_with(run).ok().flatten()
    }
    let t = TypeId::of::<T>();
    if t == TypeId::of::<f32>() {
        return on(&F32, f);
    }
    if t == TypeId::of::<f64>() {
        return on(&F64, f);
    }
    if t == TypeId::of::<usize>() {
        return on(&INDICES, f);
    }
    None
}

/// Raises glibc's thresholds for serving large blocks by `mmap` and for trimming the heap, once
/// per process, by allocating and freeing one block of [`PRIMING_BYTES`]: glibc's `free` moves
/// both thresholds up to the size of a freed `mmap`ed block (its documented dynamic threshold,
/// `mallopt(3)`), and without `unsafe` there is no other way to set them.
///
/// NOTE: with the default 128 KiB thresholds, the heap's top is trimmed and grown back every
/// training step (blocks below [`MIN_BYTES`], such as a convolution's per-image columns, are
/// not recycled here) and every step faults those pages back in; `cargo bench --bench
/// conv_step` measures it. Other allocators ignore the priming.
fn prime_allocator() {
    static PRIMED: std::sync::Once = std::sync::Once::new();
    PRIMED.call_once(|| drop(std::hint::black_box(vec![1u8; PRIMING_BYTES])));
}

/// The block [`prime_allocator`] frees: half of glibc's largest dynamic threshold (a block at the
/// limit itself would not move it).
const PRIMING_BYTES: usize = 16 * 1024 * 1024;

/// An empty vector with room for at least `len` elements, recycled when one fits.
pub(crate) fn buffer<T: Copy + 'static>(len: usize) -> Vec<T> {
    let mut v = kept(len).unwrap_or_else(|| Vec::with_capacity(len));
    v.clear();
    v
}

/// `len` zeros in a recycled buffer.
pub(crate) fn zeros<F: Float>(len: usize) -> Vec<F> {
    let mut v = buffer(len);
    v.resize(len, F::zero());
    v
}

/// `len` elements of no particular value, for an output that writes every one of them: a
/// recycled buffer keeps what its last owner left there, so nothing is written twice; a fresh
/// one is zeros (`Default`) straight from the allocator (fresh pages come zeroed, at no cost).
/// A test fills the pool with NaN and checks that every output built on it is the same.
pub(crate) fn to_overwrite<T: Copy + Default + 'static>(len: usize) -> Vec<T> {
    match kept(len) {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, T::default()); // only a buffer recycled shorter than it is large
            v
        }
        None => vec![T::default(); len], // zeros: fresh pages from the allocator
    }
}

/// The number of elements of a result of `shape` whose elements are `T`, computed without
/// overflow: an error naming `op` and the shape when its axes other than 0 multiply past
/// `isize::MAX` (ndarray's limit, which holds even for an empty array) or its elements would
/// take more than `isize::MAX` bytes (the most one allocation can hold). Every op that sizes a
/// result or a buffer from its arguments asks this first.
pub(crate) fn elements<T>(op: &'static str, shape: &[usize]) -> Result<usize> {
    let nonzero = shape.iter().filter(|&&n| n != 0).try_fold(1usize, |p, &n| p.checked_mul(n));
    let count = if shape.contains(&0) { Some(0) } else { nonzero };
    let bytes = count.and_then(|n| n.checked_mul(size_of::<T>().max(1)));
    let fits = |n: Option<usize>| n.is_some_and(|n| n <= isize::MAX as usize);
    if fits(nonzero) && fits(bytes) {
        return Ok(count.expect("no larger than the product of the nonzero axes"));
    }
    let message = match count.filter(|_| fits(nonzero)) {
        Some(n) => format!(
            "a result of shape {shape:?} is too large: {n} elements of {} bytes are more than the \
             isize::MAX bytes one allocation can hold",
            size_of::<T>()
        ),
        None => format!(
            "a result of shape {shape:?} is too large: its axes (other than those of length 0) multiply \
             past isize::MAX"
        ),
    };
    Err(Error::argument(op, message))
}

/// The error for a buffer of `len` elements of `T` that the allocator refused.
fn refused<T>(op: &'static str, len: usize) -> Error {
    let bytes = len as f64 * size_of::<T>() as f64;
    let message = format!(
        "not enough memory for a buffer of {len} elements ({:.1} GiB); expected sizes that fit in memory",
        bytes / (1u64 << 30) as f64
    );
    Error::argument(op, message)
}

/// An empty vector with room for `len` elements (recycled when one fits), or an error naming
/// `op` when the allocator refuses: for buffers whose size comes from an op's arguments.
pub(crate) fn try_buffer<T: Copy + 'static>(op: &'static str, len: usize) -> Result<Vec<T>> {
    if let Some(mut v) = kept(len) {
        v.clear();
        return Ok(v);
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| refused::<T>(op, len))?;
    Ok(v)
}

/// Whether the allocator can hand out `len` elements of `T`: an error naming `op` when it
/// refuses, for a buffer that is made later where an error cannot be returned (on another
/// thread, or by a constructor that allocates). What it reserves is given back at once;
/// requests below [`PRIMING_BYTES`] are not tried.
pub(crate) fn check_room<T>(op: &'static str, len: usize) -> Result<()> {
    if len.saturating_mul(size_of::<T>()) < PRIMING_BYTES {
        return Ok(());
    }
    Vec::<T>::new().try_reserve_exact(len).map_err(|_| refused::<T>(op, len))
}

/// `len` default values (zeros) in a fresh buffer, never a recycled one: scratch space that is
/// dropped when done; an error naming `op` when the allocator refuses.
pub(crate) fn try_scratch<T: Copy + Default>(op: &'static str, len: usize) -> Result<Vec<T>> {
    check_room::<T>(op, len)?;
    Ok(vec![T::default(); len])
}

/// `len` zeros, as [`zeros`], or an error naming `op` when the allocator refuses.
pub(crate) fn try_zeros<F: Float>(op: &'static str, len: usize) -> Result<Vec<F>> {
    let mut v = try_buffer(op, len)?;
    v.resize(len, F::zero());
    Ok(v)
}

/// `len` elements to overwrite, as [`to_overwrite`], or an error naming `op` when the
/// allocator refuses.
///
/// NOTE: a fresh buffer is first reserved and freed, then taken zeroed from the allocator, so
/// that its pages still come zeroed without being written (a reserved buffer filled with
/// zeros would write every page once more); below [`PRIMING_BYTES`] that first step is skipped.
pub(crate) fn try_to_overwrite<T: Copy + Default + 'static>(op: &'static str, len: usize) -> Result<Vec<T>> {
    if let Some(mut v) = kept(len) {
        v.truncate(len);
        v.resize(len, T::default());
        return Ok(v);
    }
    try_scratch(op, len)
}

/// A kept buffer with room for `len` elements and at most twice that, with its old contents;
/// `None` for small requests and when none fits.
fn kept<T: Copy + 'static>(len: usize) -> Option<Vec<T>> {
    if len.saturating_mul(size_of::<T>()) < MIN_BYTES {
        return None;
    }
    prime_allocator();
    with_pool(|pool: &mut Pool<T>| {
        let fits = |b: &Vec<T>| b.capacity() >= len && b.capacity() <= 2 * len;
        let best = (0..pool.buffers.len())
            .filter(|&i| fits(&pool.buffers[i]))
            .min_by_key(|&i| pool.buffers[i].capacity())?;
        let buffer = pool.buffers.remove(best); // keeps the others in the order they came back
        pool.bytes -= buffer.capacity() * size_of::<T>();
        Some(buffer)
    })
    .flatten()
}

/// Keeps `buffer` for a later [`buffer`] call, if it is large enough and there is room.
pub(crate) fn recycle<T: Copy + 'static>(buffer: Vec<T>) {
    let bytes = buffer.capacity() * size_of::<T>();
    if !(MIN_BYTES..=MAX_BYTES).contains(&bytes) {
        return;
    }
    with_pool(|pool: &mut Pool<T>| {
        while pool.buffers.len() >= MAX_BUFFERS || pool.bytes + bytes > MAX_BYTES {
            // make room by freeing the buffer kept longest: one that no request has fitted since
            // (NOTE: freeing the largest instead lets a step's never-requested copies, such as
            // each batch's input, push out the buffers every step reuses)
            if pool.buffers.is_empty() {
                return;
            }
            let freed = pool.buffers.remove(0);
            pool.bytes -= freed.capacity() * size_of::<T>();
        }
        pool.bytes += bytes;
        pool.buffers.push(buffer);
    });
}

/// The bytes this thread keeps for element type `T`.
#[cfg(test)]
pub(crate) fn kept_bytes<T: Copy + 'static>() -> usize {
    with_pool(|pool: &mut Pool<T>| pool.bytes).unwrap_or(0)
}

/// Frees every buffer this thread keeps for element type `F`, and its index buffers (a
/// training loop that is done can give the memory back).
///
/// ```
/// let tape = tapegrad::Tape::<f32>::new();
/// let big = tape.var(ndarray::Array1::<f32>::ones(1 << 20));
/// let doubled = (big * 2.0).to_array();
/// tape.reset();
/// tapegrad::release_cached_buffers::<f32>();
/// assert_eq!(doubled[0], 2.0);
/// ```
pub fn release_cached_buffers<F: Float>() {
    with_pool(|pool: &mut Pool<F>| *pool = Pool::new());
    with_pool(|pool: &mut Pool<usize>| *pool = Pool::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_buffer_is_handed_to_the_next_request_that_it_fits() {
        release_cached_buffers::<f64>();
        let len = 100_000;
        let first = zeros::<f64>(len);
        let address = first.as_ptr();
        recycle(first);
        assert_eq!(kept_bytes::<f64>(), len * 8);
        // too small a request (it would waste more than half) gets a fresh buffer
        let small = buffer::<f64>(len / 3);
        assert_ne!(small.as_ptr(), address);
        let again = zeros::<f64>(len - 10);
        assert_eq!(again.as_ptr(), address);
        assert!(again.iter().all(|&v| v == 0.0));
        assert_eq!(kept_bytes::<f64>(), 0);
        // small buffers are not kept
        recycle(vec![1.0f64; 100]);
        assert_eq!(kept_bytes::<f64>(), 0);
    }

    #[test]
    fn the_pool_stays_within_its_bounds() {
        release_cached_buffers::<f32>();
        let buffers: Vec<Vec<f32>> = (0..2 * MAX_BUFFERS).map(|_| zeros(MIN_BYTES)).collect();
        buffers.into_iter().for_each(recycle);
        assert_eq!(kept_bytes::<f32>(), MAX_BUFFERS * MIN_BYTES * 4);
        release_cached_buffers::<f32>();
        assert_eq!(kept_bytes::<f32>(), 0);
    }
}
