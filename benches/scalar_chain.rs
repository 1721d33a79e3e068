//! A 10,000-op scalar chain, forward and backward: per-op overhead of the tape against a
//! hand-written loop with a hand-derived reverse pass, and the tape's memory per op.
//!
//! The chain: `x = 0.5` (a constant); leaves `a = 0.999`, `b = 0.0001`;
//! `for i in 0..4444 { x = x·a; x = x + b; if i % 4 == 3 { x = tanh(x) } }`, then a final
//! reduction: 10,000 recorded ops. d/da ≈ 31.33777, d/db ≈ 443.5524. (With a = 0.9 the adjoints
//! go subnormal and every timing is meaningless.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tapegrad::Tape;

const STEPS: usize = 4444;
const OPS: usize = 10_000;

/// Counts live heap bytes, to measure the tape's memory per op.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The chain on a tape: returns (d/da, d/db).
fn tapegrad_chain(tape: &Tape<f32>) -> (f32, f32) {
    let a = tape.var(0.999f32);
    let b = tape.var(0.0001f32);
    let mut x = tape.constant(0.5f32);
    for i in 0..STEPS {
        x *= a;
        x += b;
        if i % 4 == 3 {
            x = x.tanh();
        }
    }
    let grads = x.sum().backward();
    (grads[a].scalar().unwrap(), grads[b].scalar().unwrap())
}

/// The same chain by hand: a forward that keeps what the reverse pass needs, then the adjoints.
fn hand_written_chain(xs: &mut Vec<f32>, ys: &mut Vec<f32>) -> (f32, f32) {
    let (a, b) = (black_box(0.999f32), black_box(0.0001f32));
    xs.clear();
    ys.clear();
    let mut x = 0.5f32;
    for i in 0..STEPS {
        xs.push(x);
        x = x * a + b;
        if i % 4 == 3 {
            x = x.tanh();
            ys.push(x);
        }
    }
    let (mut gx, mut ga, mut gb) = (1.0f32, 0.0f32, 0.0f32);
    for i in (0..STEPS).rev() {
        if i % 4 == 3 {
            let y = ys[i / 4];
            gx *= 1.0 - y * y;
        }
        gb += gx;
        ga += gx * xs[i];
        gx *= a;
    }
    (ga, gb)
}

fn bench(c: &mut Criterion) {
    let tape = Tape::<f32>::with_capacity(OPS + 8);
    let (da, db) = tapegrad_chain(&tape);
    let (mut xs, mut ys) = (Vec::with_capacity(STEPS), Vec::with_capacity(STEPS));
    let (ha, hb) = hand_written_chain(&mut xs, &mut ys);
    assert!((da - 31.33777).abs() < 1e-3 && (db - 443.5524).abs() < 1e-2, "tape: {da} {db}");
    assert!((ha - da).abs() < 1e-3 * da && (hb - db).abs() < 1e-3 * db, "hand: {ha} {hb}");

    // Memory: heap bytes held by the tape after recording the chain on a fresh tape.
    let before = LIVE.load(Ordering::Relaxed);
    let fresh = Tape::<f32>::new();
    let a = fresh.var(0.999f32);
    let b = fresh.var(0.0001f32);
    let mut x = fresh.constant(0.5f32);
    for i in 0..STEPS {
        x = x * a + b;
        if i % 4 == 3 {
            x = x.tanh();
        }
    }
    let _y = x.sum();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "scalar_chain: tape memory {:.0} bytes per op ({} ops)",
        bytes as f64 / OPS as f64,
        fresh.num_ops()
    );
    drop(fresh);

    let mut group = c.benchmark_group("scalar_chain");
    group.throughput(Throughput::Elements(OPS as u64));
    group.bench_function("tapegrad", |bench| {
        bench.iter(|| {
            tape.reset();
            black_box(tapegrad_chain(&tape))
        })
    });
    group.bench_function("hand_written", |bench| {
        bench.iter(|| black_box(hand_written_chain(&mut xs, &mut ys)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
