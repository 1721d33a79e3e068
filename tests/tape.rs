//! The tape's own behaviour: recording guards, leaf updates, scopes, anomaly mode and
//! statistics.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ndarray::array;
use tapegrad::optim::{Optimizer, Sgd};
use tapegrad::{GradOptions, Tape, Value};

#[test]
fn no_grad_guards_dropped_out_of_order_resume_recording() {
    let tape = Tape::<f64>::new();
    let outer = tape.no_grad();
    let inner = tape.no_grad();
    drop(outer); // the outer guard goes first
    assert!(!tape.is_recording(), "one guard is still open");
    drop(inner);
    assert!(tape.is_recording());
    // Training works afterwards: 100 SGD steps on (w − 3)² move w from 0 to near 3.
    let w = tape.param(0.0);
    let mut sgd = Sgd::new(vec![w], 0.1);
    for _ in 0..100 {
        let loss = (tape.get(w) - 3.0).square();
        sgd.step(&tape, &loss.backward());
        tape.reset();
    }
    assert!((tape.get(w).scalar() - 3.0).abs() < 1e-9, "{}", tape.get(w).scalar());
}

#[test]
fn a_failed_set_value_leaves_the_value_unchanged() {
    let tape = Tape::<f64>::new();
    let w = tape.param(vec![1.0, 2.0]);
    let err = tape.get(w).try_set_value(vec![1.0, 2.0, 3.0]).unwrap_err();
    assert_eq!(err.to_string(), "set_value: got shapes [2] and [3], expected a value of the leaf's shape");
    assert_eq!(tape.get(w).value(), Value::from(vec![1.0, 2.0]));
    let y = tape.get(w) * 2.0;
    let err = y.try_set_value(vec![0.0, 0.0]).unwrap_err();
    assert_eq!(err.to_string(), "set_value: only leaves (var, param, constant, buffer) can be changed");
}

#[test]
fn an_update_may_read_other_vars_but_not_its_own() {
    let tape = Tape::<f64>::new();
    let (w, lr) = (tape.var(vec![1.0, 2.0]), tape.constant(0.5));
    w.update(|mut v| v.mapv_inplace(|x| x - lr.scalar()));
    assert_eq!(w.value(), Value::from(vec![0.5, 1.5]));
    let message = catch_unwind(AssertUnwindSafe(|| {
        w.update(|_| {
            let _ = w.scalar();
        })
    }))
    .expect_err("reading the leaf being updated")
    .downcast::<String>()
    .unwrap();
    assert!(
        message.starts_with("scalar: Var#")
            && message.ends_with("is being changed by Var::update; read it before the update"),
        "{message}"
    );
    assert_eq!(w.value(), Value::from(vec![0.5, 1.5]), "the value is put back after the panic");
}

#[test]
fn create_graph_inside_no_grad_still_records_the_backward_pass() {
    let tape = Tape::<f64>::new();
    let x = tape.var(2.0);
    let y = x * x * x; // x³
    let _frozen = tape.no_grad();
    let [dy] = tape.grad(y, [x], GradOptions { create_graph: true });
    let [d2y] = tape.grad(dy, [x], GradOptions { create_graph: true });
    assert_eq!((dy.scalar(), d2y.scalar()), (12.0, 12.0)); // 3x², 6x
    assert!(!tape.is_recording(), "the guard is still in force afterwards");
}

#[test]
fn scopes_free_what_they_made_and_keep_parameters() {
    let tape = Tape::<f64>::new();
    let w = tape.param(vec![1.0, 2.0]);
    let before = tape.len();
    let (value, grad) = tape.scope(|| {
        let y = (tape.get(w) * tape.get(w)).sum(); // Σ w²
        let g = y.backward();
        (y.scalar(), g[w].to_array())
    });
    assert_eq!((value, grad), (5.0, array![2.0, 4.0].into_dyn()));
    assert_eq!((tape.len(), tape.num_ops()), (before, 0));
    // Nested scopes, and nodes made before a scope stay.
    let kept = tape.get(w) + 1.0;
    let inner = tape.scope(|| tape.scope(|| (kept * 3.0).to_array()) + tape.scope(|| kept.to_array()));
    assert_eq!(inner, array![8.0, 12.0].into_dyn());
    assert_eq!(kept.to_array(), array![2.0, 3.0].into_dyn());
    assert_eq!(tape.len(), before + 1);
    assert_eq!(kept.sum().backward()[w].to_array(), array![1.0, 1.0].into_dyn());
}

#[test]
fn backward_of_a_freed_var_says_backward() {
    let tape = Tape::<f64>::new();
    let y = tape.var(1.0) * 2.0;
    tape.reset();
    let err = y.try_backward().unwrap_err().to_string();
    assert!(err.starts_with("backward: Var#"), "{err}");
    assert!(err.contains("was freed (by Tape::reset()"), "{err}");
}

#[test]
fn anomaly_mode_names_the_op_and_the_line_that_made_a_nan_or_an_infinity() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    // Forward: ln(0·x) = ln 0 = −∞, made by ln from a finite input.
    let x = tape.var(vec![1.0, 2.0]);
    let zero = x * 0.0;
    let (line, err) = (line!(), zero.try_apply(tapegrad::ops::unary::Ln).unwrap_err().to_string());
    let at = format!("tests/tape.rs:{line}:");
    assert!(err.starts_with("ln: produced -inf from finite inputs of shape [2] (node created at "), "{err}");
    assert!(err.contains(&at), "{err}");
    // Backward: √x is finite at 0, its gradient 1/(2√x) is not.
    let x = tape.var(vec![0.0, 4.0]);
    let line = line!() + 1;
    let y = x.sqrt().sum();
    let err = y.try_backward().unwrap_err().to_string();
    assert!(err.starts_with("sqrt: produced inf in backward from finite inputs of shape [2]"), "{err}");
    assert!(err.contains(&format!("tests/tape.rs:{line}:")), "{err}");
    // Off, the same computation gives the infinity without complaint.
    tape.set_detect_anomaly(false);
    let g = x.sqrt().sum().backward();
    assert_eq!(g[x].to_array(), array![f64::INFINITY, 0.25].into_dyn());
}

/// The fallible arithmetic (`try_add`, `try_sub`, `try_mul`, `try_div`) names the caller's
/// line as where the anomalous node was made, as the operators do, not a line of the library.
#[test]
fn anomaly_mode_names_the_callers_line_for_fallible_arithmetic() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let (x, zero, big) = (tape.var(vec![1.0, -2.0]), tape.var(vec![0.0, 0.0]), tape.var(vec![1e308, 1e308]));
    let (line, div) = (line!(), x.try_div(zero).unwrap_err().to_string());
    let (line_add, add) = (line!(), big.try_add(big).unwrap_err().to_string());
    let (line_sub, sub) = (line!(), big.try_sub(-big).unwrap_err().to_string());
    let (line_mul, mul) = (line!(), big.try_mul(big).unwrap_err().to_string());
    let (line_op, op) =
        (line!(), tape.try_apply(tapegrad::ops::binary::Div, &[x, zero]).unwrap_err().to_string());
    for (line, err, name) in [
        (line, div, "div"),
        (line_add, add, "add"),
        (line_sub, sub, "sub"),
        (line_mul, mul, "mul"),
        (line_op, op, "div"),
    ] {
        assert!(err.starts_with(&format!("{name}: produced inf from finite inputs of shape")), "{err}");
        assert!(
            err.ends_with(&format!("(node created at tests/tape.rs:{line}:{})", err_column(&err))),
            "{err}"
        );
    }
}

/// The column in an anomaly's "file:line:column)".
fn err_column(err: &str) -> &str {
    err.trim_end_matches(')').rsplit(':').next().unwrap()
}

#[test]
fn statistics_count_nodes_and_bytes_by_op() {
    let tape = Tape::<f64>::new();
    let w = tape.param(ndarray::Array2::<f64>::zeros((3, 4)));
    let x = tape.constant(ndarray::Array2::<f64>::ones((2, 3)));
    let y = x.matmul(tape.get(w)).tanh().sum();
    let stats = tape.stats();
    let row = |name: &str| stats.by_op.iter().find(|r| r.name == name).map(|r| r.nodes);
    assert_eq!(stats.nodes, 5);
    assert_eq!(
        (row("parameter"), row("constant"), row("matmul"), row("tanh"), row("sum")),
        (Some(1), Some(1), Some(1), Some(1), Some(1))
    );
    let parameter = stats.by_op.iter().find(|r| r.name == "parameter").unwrap();
    assert!(parameter.bytes >= 12 * 8, "12 f64s at least: {}", parameter.bytes);
    assert_eq!(stats.bytes, stats.by_op.iter().map(|r| r.bytes).sum::<usize>());
    let table = stats.to_string();
    assert!(table.starts_with("op"), "{table}");
    assert!(table.lines().last().unwrap().starts_with("total"), "{table}");
    assert_eq!(y.scalar(), 0.0); // w = 0, so Σ tanh(x·w) = 0
}

#[test]
fn anomaly_mode_checks_scalar_gradients_too() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(0.0);
    let err = x.sqrt().try_backward().unwrap_err().to_string();
    assert!(err.starts_with("sqrt: produced inf in backward from finite inputs of shape []"), "{err}");
}

#[test]
fn nested_updates_guard_both_leaves_and_backward_waits_for_them() {
    let tape = Tape::<f64>::new();
    let (a, b) = (tape.var(vec![1.0, 2.0]), tape.var(vec![3.0, 4.0]));
    a.update(|_| {
        b.update(|_| assert!(a.try_value().is_err()));
        let err = a.try_value().unwrap_err().to_string();
        assert!(err.ends_with("is being changed by Var::update; read it before the update"), "{err}");
    });
    assert_eq!((a.value(), b.value()), (Value::from(vec![1.0, 2.0]), Value::from(vec![3.0, 4.0])));
    let w = tape.var(3.0);
    let y = w * w;
    w.update(|_| {
        let err = y.try_backward().unwrap_err().to_string();
        assert!(err.starts_with("backward: called inside Var::update of Var#"), "{err}");
    });
    assert_eq!(y.backward()[w].scalar(), Some(6.0));
}

#[test]
fn a_reset_inside_a_scope_leaves_the_tape_consistent() {
    let tape = Tape::<f64>::new();
    let p = tape.param(2.0);
    let _ = tape.get(p) * 3.0;
    let mut escaped = None;
    tape.scope(|| {
        tape.reset();
        let x = tape.get(p) * tape.get(p);
        tape.scope(|| {
            tape.reset();
            escaped = Some(tape.get(p) * 2.0 * 3.0);
        });
        let _ = x;
    });
    assert_eq!((tape.len(), tape.num_ops()), (1, 0));
    let err = escaped.unwrap().try_backward().unwrap_err().to_string();
    assert!(err.contains("was freed (by Tape::reset(), or at the end of the Tape::scope"), "{err}");
    assert_eq!((tape.get(p) * tape.get(p)).backward()[p].scalar(), Some(4.0));
}

/// y = x, with a rule that panics the first time it runs.
struct PanicsOnce(std::cell::Cell<bool>);

impl<F: tapegrad::Float> tapegrad::Op<F> for PanicsOnce {
    fn name(&self) -> &'static str {
        "panics_once"
    }
    fn forward(&self, x: &[&Value<F>]) -> tapegrad::Result<Value<F>> {
        Ok(x[0].clone())
    }
    fn backward<'t>(
        &self,
        _cx: &tapegrad::Context<'t, F>,
        gy: tapegrad::Var<'t, F>,
    ) -> tapegrad::Grads<'t, F> {
        let _temporary = gy * F::of(2.0);
        if self.0.replace(false) {
            panic!("the rule failed");
        }
        tapegrad::grads![gy]
    }
}

#[test]
fn a_rule_that_panics_leaves_its_op_and_frees_its_temporaries() {
    let tape = Tape::<f64>::new();
    let x = tape.var(vec![1.0, 2.0]);
    let y = x.apply(PanicsOnce(std::cell::Cell::new(true))).sum();
    let nodes = tape.len();
    assert!(catch_unwind(AssertUnwindSafe(|| y.backward())).is_err());
    assert_eq!(tape.len(), nodes, "the rule's temporaries are freed");
    assert_eq!(y.backward()[x].to_array(), array![1.0, 1.0].into_dyn());
    let kept: f64 = tape.scope(|| (x * 2.0).sum().scalar());
    assert_eq!((kept, tape.len()), (6.0, nodes), "scopes still free what they make");
}

#[test]
fn anomaly_mode_reports_only_what_finite_values_made() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    // e^∞ = ∞ and its gradient ∞: made from an infinite input, not an anomaly.
    let x = tape.var(f64::INFINITY);
    assert_eq!(x.exp().backward()[x].scalar(), Some(f64::INFINITY));
}

#[test]
fn slices_of_one_value_add_into_one_gradient() {
    // Overlapping row and column slices of x, and x used whole: the plain pass adds each slice's
    // gradient straight into x's (no full-size gradient per slice); anomaly mode runs every
    // rule. Both must give the closed form 2x + the slices' weights placed where they were cut.
    let tape = Tape::<f64>::new();
    let x0 = ndarray::Array2::from_shape_fn((5, 4), |(i, j)| (i as f64 - 2.0) * 0.3 + j as f64 * 0.1);
    let x = tape.var(x0.clone());
    fn loss<'t>(x: tapegrad::Var<'t, f64>) -> tapegrad::Var<'t, f64> {
        let mut total = x.square().sum();
        for s in 0..4 {
            let w = ndarray::Array2::from_elem((2, 4), s as f64 + 1.0);
            total += (x.narrow(0, s, 2) * x.tape().constant(w)).sum();
        }
        total + (x.narrow(1, 1, 2) * 10.0).sum()
    }
    let mut expected = &x0 * 2.0;
    for s in 0..4 {
        expected.slice_mut(ndarray::s![s..s + 2, ..]).mapv_inplace(|v| v + s as f64 + 1.0);
    }
    expected.slice_mut(ndarray::s![.., 1..3]).mapv_inplace(|v| v + 10.0);
    let plain = loss(x).backward()[x].to_array();
    let error = (&plain - &expected.clone().into_dyn()).mapv(f64::abs).fold(0.0, |m: f64, &v| m.max(v));
    assert!(error < 1e-12, "{plain} against {expected}");
    tape.set_detect_anomaly(true);
    let every_rule = loss(x).backward()[x].to_array();
    assert_eq!(plain, every_rule);
}

/// A loop that neither resets nor scopes its tape passes the tape's memory warning threshold:
/// the tape prints one warning to stderr, saying how much it holds in how many nodes and what
/// to do, and never a second, even after a reset and another pass. Run in a child process so
/// that its stderr can be read.
#[test]
fn a_tape_past_its_memory_warning_threshold_warns_once_on_stderr() {
    const CHILD: &str = "TAPEGRAD_TEST_MEMORY_WARNING_CHILD";
    const NAME: &str = "a_tape_past_its_memory_warning_threshold_warns_once_on_stderr";
    if std::env::var_os(CHILD).is_some() {
        let tape = Tape::<f64>::new();
        tape.set_memory_warning(Some(64 << 10));
        let w = tape.param(vec![0.5; 100]);
        for pass in 0..2 {
            for _ in 0..500 {
                assert_eq!((tape.get(w) * 2.0).sum().scalar(), 100.0); // 800 bytes kept per step
            }
            assert!(tape.memory_warned(), "pass {pass}");
            tape.reset();
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("tapegrad: warning:")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    let warning = warnings[0];
    // "a Tape holds 64.xx KiB in N nodes, past its memory warning threshold of 64.00 KiB"
    let held = warning.split("holds ").nth(1).unwrap();
    let (kib, rest) = held.split_once(" KiB in ").unwrap();
    let kib: f64 = kib.parse().unwrap();
    assert!((64.0..65.0).contains(&kib), "{warning}");
    let nodes: usize = rest.split(' ').next().unwrap().parse().unwrap();
    // each step keeps a node of 100 f64s and a scalar one: about 64 KiB / 800 bytes steps
    assert!((2 * 50..=2 * 82 + 1).contains(&nodes), "{warning}");
    assert!(rest.contains("past its memory warning threshold of 64.00 KiB"), "{warning}");
    assert!(warning.contains("tape.reset()") && warning.contains("tape.scope("), "{warning}");
}

/// A default tape (1 GiB) does not warn in normal use: training steps with a reset each, and
/// evaluation in a scope.
#[test]
fn a_default_tape_does_not_warn_in_normal_use() {
    use tapegrad::nn::{self, Linear, Module};
    let tape = Tape::<f32>::new();
    assert_eq!(tape.memory_warning(), Some(1 << 30));
    let model =
        Linear::from_arrays(&tape, ndarray::Array2::<f32>::ones((256, 64)), ndarray::Array1::zeros(64));
    let mut sgd = Sgd::new(nn::params(&model), 1e-4);
    let x = ndarray::Array2::<f32>::ones((128, 256));
    for _ in 0..200 {
        let loss = model.forward(tape.constant(x.clone())).square().mean();
        sgd.step(&tape, &loss.backward());
        tape.reset();
        let _: f32 = tape.scope(|| model.forward(tape.constant(x.clone())).sum().scalar());
    }
    assert!(!tape.memory_warned());
    // turned off, a tape that keeps far more than a small threshold says nothing
    let kept = Tape::<f32>::new();
    kept.set_memory_warning(Some(1024));
    kept.set_memory_warning(None);
    for _ in 0..10 {
        let _ = kept.constant(x.clone()).sum().scalar();
    }
    assert!(kept.stats().bytes > 10 * 128 * 256 * 4);
    assert!(!kept.memory_warned());
}
