//! What the memory tests share: a counting allocator that tracks, per thread and for the whole
//! process, the heap bytes held and the most held since a mark, and the process's resident set
//! size. Each test file
//! installs the allocator itself (`#[global_allocator]`) and uses the part it needs.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts the heap bytes the current thread holds, and the most it has held since
/// [`mark_peak`]. Per thread, so that tests running in parallel do not disturb each other.
pub struct Counting;

thread_local! {
    // const-initialised and without a destructor: safe to touch from inside the allocator
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// The heap bytes all threads hold, and the most they held since [`mark_process_peak`].
static PROCESS_HELD: AtomicIsize = AtomicIsize::new(0);
static PROCESS_PEAK: AtomicIsize = AtomicIsize::new(0);

fn track(change: isize) {
    let now = PROCESS_HELD.fetch_add(change, Ordering::Relaxed) + change;
    PROCESS_PEAK.fetch_max(now, Ordering::Relaxed);
    let _ = HELD.try_with(|held| {
        held.set(held.get() + change);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(held.get())));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The heap bytes this thread holds.
pub fn held() -> isize {
    HELD.with(Cell::get)
}

/// Starts measuring the peak afresh, from what is held now; returns that.
pub fn mark_peak() -> isize {
    let now = held();
    PEAK.with(|peak| peak.set(now));
    now
}

/// The most heap this thread held since [`mark_peak`].
pub fn peak() -> isize {
    PEAK.with(Cell::get)
}

/// The resident set size in KiB, from `/proc/self/status`.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The heap bytes all threads of the process hold.
pub fn process_held() -> isize {
    PROCESS_HELD.load(Ordering::Relaxed)
}

/// Starts measuring the process-wide peak afresh, from what all threads hold now; returns
/// that. Meant for a test binary whose tests run one at a time.
pub fn mark_process_peak() -> isize {
    let now = process_held();
    PROCESS_PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most heap all threads together held since [`mark_process_peak`].
pub fn process_peak() -> isize {
    PROCESS_PEAK.load(Ordering::Relaxed)
}
