//! Recycled array buffers: a thread's large freed values are kept and handed to the next ops
//! that need as much room, instead of going back to the system allocator.
//!
//! NOTE: measured on SimpleConvNet's training step (`cargo bench --bench conv_step`): without
//! recycling, glibc's allocator returns the step's tens of megabytes to the kernel when the
//! tape is reset (large blocks are `mmap`ed; the heap's top is trimmed) and every step faults
//! them back in page by page, zeroed: about 22,000 page faults a step, 60% of its time spent
//! in the kernel. PyTorch keeps a caching allocator for the same reason.
//!
//! Only buffers of at least [`MIN_BYTES`] are kept (smaller ones are cheap to allocate), at most
//! [`MAX_BUFFERS`] of them and [`MAX_BYTES`] in all per thread and element type, the one kept
//! longest going first; a request takes the smallest kept buffer that holds it without wasting
//! more than half of it.

use std::cell::RefCell;

use crate::float::Float;

/// Smaller buffers go straight back to the allocator.
pub(crate) const MIN_BYTES: usize = 64 * 1024;
/// At most this many buffers are kept per thread and element type.
pub(crate) const MAX_BUFFERS: usize = 64;
/// At most this many bytes are kept per thread and element type.
pub(crate) const MAX_BYTES: usize = 512 * 1024 * 1024;

/// The kept buffers of one element type on one thread.
#[derive(Debug)]
pub struct Pool<F> {
    buffers: Vec<Vec<F>>,
    bytes: usize,
}

impl<F> Pool<F> {
    pub(crate) const fn new() -> Self {
        Pool { buffers: Vec::new(), bytes: 0 }
    }
}

/// Element types with a recycled-buffer pool per thread: the floats, and `usize` for index
/// arrays (max pooling keeps one per step as large as its output).
pub(crate) trait Recycled: Copy + Default + 'static {
    /// This thread's pool.
    fn local() -> &'static LocalPool<Self>;
}

impl<F: Float> Recycled for F {
    fn local() -> &'static LocalPool<Self> {
        F::pool()
    }
}

thread_local! {
    static INDICES: RefCell<Pool<usize>> = const { RefCell::new(Pool::new()) };
}

impl Recycled for usize {
    fn local() -> &'static LocalPool<Self> {
        &INDICES
    }
}

/// Raises glibc's thresholds for serving large blocks by `mmap` and for trimming the heap, once
/// per process, by allocating and freeing one block of [`PRIMING_BYTES`]: glibc's `free` moves
/// both thresholds up to the size of a freed `mmap`ed block (its documented dynamic threshold,
/// `mallopt(3)`), and without `unsafe` there is no other way to set them.
///
/// NOTE: measured on SimpleConvNet's step (`cargo bench --bench conv_step`): with the default
/// 128 KiB thresholds, the heap's top was trimmed and grown back every step (the blocks below
/// [`MIN_BYTES`], the convolution's per-image columns among them, are not recycled here) and the
/// step faulted about 4,000 pages back in: 19.8 ms against 10.3 ms primed. Earlier code primed
/// by accident, freeing a 6.9 MB copy every step. Other allocators ignore it.
fn prime_allocator() {
    static PRIMED: std::sync::Once = std::sync::Once::new();
    PRIMED.call_once(|| drop(std::hint::black_box(vec![1u8; PRIMING_BYTES])));
}

/// The block [`prime_allocator`] frees: half of glibc's largest dynamic threshold (a block at the
/// limit itself would not move it).
const PRIMING_BYTES: usize = 16 * 1024 * 1024;

/// An empty vector with room for at least `len` elements, recycled when one fits.
pub(crate) fn buffer<F: Recycled>(len: usize) -> Vec<F> {
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
///
/// NOTE: measured on the LSTM language model's step (`cargo bench --bench lstm_step`): zeroing
/// the read-out's `[700, 10000]` product and its cross-entropy gradient before writing them was
/// 4.4% of the step, one thread writing 56 MB that the next pass overwrote.
pub(crate) fn to_overwrite<F: Recycled>(len: usize) -> Vec<F> {
    match kept(len) {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, F::default()); // only a buffer recycled shorter than it is large
            v
        }
        None => vec![F::default(); len], // zeros: fresh pages from the allocator
    }
}

/// A kept buffer with room for `len` elements and at most twice that, with its old contents;
/// `None` for small requests and when none fits.
fn kept<F: Recycled>(len: usize) -> Option<Vec<F>> {
    if len * size_of::<F>() < MIN_BYTES {
        return None;
    }
    prime_allocator();
    let kept = F::local().try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let fits = |b: &Vec<F>| b.capacity() >= len && b.capacity() <= 2 * len;
        let best = (0..pool.buffers.len())
            .filter(|&i| fits(&pool.buffers[i]))
            .min_by_key(|&i| pool.buffers[i].capacity())?;
        let buffer = pool.buffers.remove(best); // keeps the others in the order they came back
        pool.bytes -= buffer.capacity() * size_of::<F>();
        Some(buffer)
    });
    kept.ok().flatten()
}

/// Keeps `buffer` for a later [`buffer`] call, if it is large enough and there is room.
pub(crate) fn recycle<F: Recycled>(buffer: Vec<F>) {
    let bytes = buffer.capacity() * size_of::<F>();
    if !(MIN_BYTES..=MAX_BYTES).contains(&bytes) {
        return;
    }
    // During thread exit the pool may be gone already; the buffer is then simply freed.
    let _ = F::local().try_with(|pool| {
        let mut pool = pool.borrow_mut();
        while pool.buffers.len() >= MAX_BUFFERS || pool.bytes + bytes > MAX_BYTES {
            // make room by freeing the buffer kept longest: one that no request has fitted since
            // (NOTE: freeing the largest instead let a step's never-requested copies, such as
            // each batch's input, push out the buffers every step reuses: SimpleConvNet's step
            // went from 7.8 to 10.8 ms)
            if pool.buffers.is_empty() {
                return;
            }
            let freed = pool.buffers.remove(0);
            pool.bytes -= freed.capacity() * size_of::<F>();
        }
        pool.bytes += bytes;
        pool.buffers.push(buffer);
    });
}

/// The bytes this thread keeps for element type `F`.
#[cfg(test)]
pub(crate) fn kept_bytes<F: Float>() -> usize {
    F::pool().try_with(|pool| pool.borrow().bytes).unwrap_or(0)
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
    let _ = F::pool().try_with(|pool| *pool.borrow_mut() = Pool::new());
    let _ = INDICES.try_with(|pool| *pool.borrow_mut() = Pool::new());
}

/// The thread-local pool of an element type, reached through [`Float::pool`].
pub(crate) type LocalPool<F> = std::thread::LocalKey<RefCell<Pool<F>>>;

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

    /// The outputs built on [`to_overwrite`] write every element: after the pool has been
    /// filled with buffers of NaN (and index buffers pointing nowhere), a product, an affine
    /// map, the cross-entropy gradient and max pooling give the same bits as from a clean
    /// pool, and shapes large enough that the buffers come from the pool.
    #[test]
    fn outputs_on_recycled_buffers_do_not_depend_on_their_old_contents() {
        use crate::{Tape, Window};
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut random = |shape: &[usize]| {
            ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(shape), |_| rng.random::<f32>() - 0.5)
        };
        let (a, b, bias) = (random(&[300, 70]), random(&[70, 200]), random(&[200]));
        let image = random(&[4, 5, 60, 60]);
        let labels: Vec<usize> = (0..300).map(|i| (i * 7) % 200).collect();
        let run = || {
            let tape = Tape::<f32>::new();
            let (a, b, bias) = (tape.var(a.clone()), tape.constant(b.clone()), tape.constant(bias.clone()));
            let product = a.matmul(b).to_array();
            let logits = a.affine(b, bias);
            let grad = crate::nn::softmax_cross_entropy(logits, &labels).backward()[a].to_array();
            let x = tape.var(image.clone());
            let pooled = x.max_pool2d(Window::pool((2, 2)));
            let strided = x.max_pool2d(Window { stride: (2, 2), padding: (1, 1), ..Window::new((3, 3)) });
            let image_grad = (pooled.sum() + strided.sum()).backward()[x].to_array();
            (product, logits.to_array(), grad, pooled.to_array(), strided.to_array(), image_grad)
        };
        release_cached_buffers::<f32>();
        let clean = run();
        for len in [300 * 200, 300 * 70, 4 * 5 * 30 * 30] {
            for _ in 0..4 {
                recycle(vec![f32::NAN; len]);
                recycle(vec![usize::MAX; len]);
            }
        }
        let poisoned = run();
        release_cached_buffers::<f32>();
        assert!(clean.0.iter().chain(&clean.2).chain(&clean.5).all(|v| v.is_finite()));
        assert_eq!(clean, poisoned);
    }
}
