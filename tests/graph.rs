//! Graph behaviour: fan-out, diamonds, constants, no_grad and detach, resets and stale handles,
//! foreign tapes, long chains, and second derivatives through `create_graph`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ndarray::array;
use tapegrad::{Error, GradOptions, Tape};

#[test]
fn fan_out_accumulates_every_use() {
    // y = x·x + x + x: dy/dx = 2x + 2
    let tape = Tape::<f64>::new();
    let x = tape.var(3.0);
    let y = x * x + x + x;
    assert_eq!(y.backward()[x].scalar(), Some(8.0));
}

#[test]
fn diamond_sums_both_paths() {
    // a = 2x, b = 3x, y = a·b = 6x²: dy/dx = 12x
    let tape = Tape::<f64>::new();
    let x = tape.var(array![1.0, -2.0]);
    let (a, b) = (x * 2.0, 3.0 * x);
    let g = (a * b).sum().backward();
    assert_eq!(g[x].to_array(), array![12.0, -24.0].into_dyn());
}

#[test]
fn constants_record_no_backward() {
    let tape = Tape::<f64>::new();
    let c = tape.constant(array![1.0, 2.0]);
    let y = (c * c).exp().sum();
    assert!(!y.requires_grad());
    assert_eq!(tape.num_ops(), 0);
    assert_eq!(tape.len(), 4);
    let x = tape.var(2.0);
    let z = (x * c).sum();
    assert_eq!(tape.num_ops(), 2);
    let g = z.backward();
    assert_eq!(g.len(), 1); // the constant gets no gradient
    assert_eq!(g[x].scalar(), Some(3.0));
    assert!(g.get(c).is_none());
}

#[test]
fn backward_of_a_constant_output_is_empty() {
    let tape = Tape::<f64>::new();
    let x = tape.var(2.0);
    let y = tape.constant(5.0) * 2.0;
    let g = y.backward();
    assert!(g.is_empty());
    assert_eq!(g.wrt(x).scalar(), Some(0.0));
}

#[test]
fn no_grad_and_detach_stop_gradients() {
    let tape = Tape::<f64>::new();
    let x = tape.var(3.0);
    let frozen = {
        let _guard = tape.no_grad();
        x * x
    };
    assert!(tape.is_recording());
    let y = x * frozen + x.detach() * x;
    // d/dx [x·9 + 3·x] = 12
    assert_eq!(y.backward()[x].scalar(), Some(12.0));
}

#[test]
fn intermediate_gradients_are_not_kept() {
    let tape = Tape::<f64>::new();
    let x = tape.var(2.0);
    let h = x * x;
    let y = h * 3.0;
    let g = y.backward();
    assert_eq!(g.len(), 1);
    assert_eq!(g[x].scalar(), Some(12.0));
    // asking for an intermediate's gradient says where to get it, rather than answering 0
    let message = catch_unwind(AssertUnwindSafe(|| g.get(h).is_none())).unwrap_err();
    assert!(message.downcast_ref::<String>().unwrap().contains("is an intermediate result"));
    for create_graph in [false, true] {
        let [dh] = tape.grad(y, [h], GradOptions { create_graph });
        assert_eq!(dh.scalar(), 3.0);
    }
}

#[test]
fn parameters_survive_reset_and_freed_handles_are_reported() {
    let tape = Tape::<f64>::new();
    let w = tape.param(2.0);
    let old = tape.var(5.0);
    let y = tape.get(w) * old;
    tape.reset();
    assert_eq!(tape.len(), 1);
    // New nodes reuse the freed slots; the versioned keys still tell the old handles apart.
    let fresh: Vec<_> = (0..4).map(|i| tape.var(i as f64)).collect();
    assert_eq!(fresh[0].scalar(), 0.0);
    match y.try_value() {
        Err(Error::Freed { var, .. }) => assert!(var.starts_with("Var#"), "{var}"),
        other => panic!("expected a freed-node error, got {other:?}"),
    }
    let err = catch_unwind(AssertUnwindSafe(|| old * 2.0)).unwrap_err();
    let message = err.downcast_ref::<String>().unwrap();
    assert!(message.starts_with("mul_scalar: Var#"), "{message}");
    assert!(message.contains("was freed (by Tape::reset()"), "{message}");
    assert_eq!((tape.get(w) * 4.0).backward()[w].scalar(), Some(4.0));
}

#[test]
fn vars_of_two_tapes_do_not_mix() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let (a, b) = (t1.var(1.0), t2.var(2.0));
    let message =
        catch_unwind(AssertUnwindSafe(|| a + b)).unwrap_err().downcast_ref::<String>().unwrap().clone();
    assert_eq!(
        message,
        "add: operand 1 (Var#1v1) belongs to a different Tape; values from two tapes cannot be mixed"
    );
    let grads = (a * 2.0).backward();
    let message = catch_unwind(AssertUnwindSafe(|| grads.get(b).is_some())).unwrap_err();
    assert!(message.downcast_ref::<String>().unwrap().contains("belongs to a different Tape"));
}

#[test]
fn grad_of_an_output_from_another_tape_is_an_error() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let a1 = t1.var(5.0);
    let b1 = a1 * 7.0;
    let _ = (b1 * 2.0, b1 * 3.0);
    let y2 = t2.var(1.0) * 2.0;
    for create_graph in [false, true] {
        let err = t1.try_grad(y2, [a1], GradOptions { create_graph }).unwrap_err();
        assert!(matches!(err, Error::ForeignTape { op: "grad", .. }), "{err}");
    }
}

#[test]
fn a_100k_node_chain_runs_without_recursion() {
    let tape = Tape::<f64>::with_capacity(200_001);
    let x = tape.var(1.0);
    let mut y = x;
    for _ in 0..100_000 {
        y = y * 1.00001 + 0.0;
    }
    assert_eq!(tape.num_ops(), 200_000);
    let g = y.backward()[x].scalar().unwrap();
    assert!((g - 1.00001f64.powi(100_000)).abs() < 1e-9 * g);
    drop(tape);
}

#[test]
fn backward_on_a_non_scalar_says_what_to_do() {
    let tape = Tape::<f64>::new();
    let x = tape.var(array![[1.0, 2.0]]);
    let err = (x * 2.0).try_backward().unwrap_err();
    assert_eq!(
        err.to_string(),
        "backward: the output has shape [1, 2], expected a scalar (shape []); reduce it first with \
         .sum() or .mean(), or pass a seed gradient of shape [1, 2] to backward_with()"
    );
}

#[test]
fn second_derivatives_through_create_graph() {
    // f(x) = x·sin(x): f' = sin x + x cos x, f'' = 2 cos x − x sin x
    let tape = Tape::<f64>::new();
    let x0 = 0.8f64;
    let x = tape.var(x0);
    let y = x * x.sin();
    let options = GradOptions { create_graph: true };
    let [dy] = tape.grad(y, [x], options);
    assert!((dy.scalar() - (x0.sin() + x0 * x0.cos())).abs() < 1e-12);
    let [d2y] = tape.grad(dy, [x], options);
    assert!((d2y.scalar() - (2.0 * x0.cos() - x0 * x0.sin())).abs() < 1e-12);
    // the plain backward of the first derivative agrees
    assert!((dy.backward()[x].scalar().unwrap() - d2y.scalar()).abs() < 1e-12);
}

#[test]
fn f32_tapes_work_end_to_end() {
    let tape = Tape::<f32>::new();
    let w = tape.var(array![[0.5f32, -1.0], [2.0, 0.25]]);
    let x = tape.constant(array![1.0f32, 2.0]);
    let y = w.matmul(x).tanh().sum();
    let g = y.backward();
    let wx = [0.5f32 - 2.0, 2.0 + 0.5];
    let expected = array![
        [1.0 - wx[0].tanh().powi(2), 2.0 * (1.0 - wx[0].tanh().powi(2))],
        [1.0 - wx[1].tanh().powi(2), 2.0 * (1.0 - wx[1].tanh().powi(2))]
    ];
    for (a, b) in g[w].to_array().iter().zip(&expected) {
        assert!((a - b).abs() < 1e-6);
    }
}
