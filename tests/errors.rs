//! Panics from misuse point at the caller's line and say what was wrong.

use std::panic::{self, Location};
use std::sync::{Arc, Mutex};

use ndarray::Array2;
use tapegrad::Tape;

/// Runs `f`, which must panic, and returns the message and the line it was reported at. The
/// panic hook is global to the process, so tests take turns installing theirs.
fn panic_site(f: impl FnOnce()) -> (String, u32) {
    static HOOK: Mutex<()> = Mutex::new(());
    let _turn = HOOK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let line = Arc::new(Mutex::new(0));
    let seen = line.clone();
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        *seen.lock().unwrap() = info.location().map_or(0, Location::line);
    }));
    let payload = panic::catch_unwind(panic::AssertUnwindSafe(f)).expect_err("the call panics");
    panic::set_hook(previous);
    let message = payload.downcast_ref::<String>().cloned().unwrap_or_default();
    let line = *line.lock().unwrap();
    (message, line)
}

#[test]
fn misuse_is_reported_at_the_callers_line() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Array2::<f64>::zeros((2, 3)));

    let (message, line) = panic_site(|| {
        a.matmul(a);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, "matmul: got shapes [2, 3] and [2, 3], expected [m, k]·[k, n] with equal k (3 ≠ 2)");

    let b = tape.var(vec![1.0, 2.0]);
    let (message, line) = panic_site(|| {
        let _ = a + b;
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(
        message,
        "add: got shapes [2, 3] and [2], expected shapes that broadcast (each axis, aligned from the \
         right, equal or 1)"
    );

    let (message, line) = panic_site(|| {
        a.backward();
    });
    assert_eq!(line, line!() - 2);
    assert!(message.starts_with("backward: the output has shape [2, 3], expected a scalar"), "{message}");

    let (message, line) = panic_site(|| {
        a.reshape(&[4]);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(
        message,
        "reshape: got shapes [2, 3] and [4], expected a shape with the same number of elements (6)"
    );

    let (message, line) = panic_site(|| {
        a.softmax(2);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, "softmax: axis 2 is out of range for a value of rank 2 (axes 0..2)");

    let (message, _) = panic_site(|| {
        a.slice(tapegrad::s![..5, ..]);
    });
    assert!(
        message.starts_with(
            "slice: Slice { start: 0, end: Some(5), step: 1 } is out of range for axis 0 of length 2"
        ),
        "{message}"
    );

    let (message, _) = panic_site(|| {
        a.rows(&[0, 7]);
    });
    assert_eq!(message, "rows: index 7 is out of range for 2 rows (shape [2, 3])");
}

#[test]
fn layer_and_vector_errors_name_the_callers_shapes() {
    let tape = Tape::<f64>::new();
    let (u, v) = (tape.var(vec![1.0, 2.0, 3.0]), tape.var(vec![1.0, 2.0]));
    let e = u.try_matmul(v).unwrap_err().to_string();
    assert_eq!(
        e,
        "matmul: got shapes [3] and [2], expected a shared inner dimension k ([.., k]·[k, ..]), got 3 ≠ 2"
    );
    let bn = tapegrad::nn::BatchNorm1d::new(&tape, 3);
    let (message, _) = panic_site(|| {
        tapegrad::nn::Module::forward(&bn, tape.var(Array2::<f64>::zeros((4, 5))));
    });
    assert_eq!(
        message,
        "BatchNorm1d: got shapes [4, 5], expected (batch, 3) with a batch of at least one sample"
    );
}
