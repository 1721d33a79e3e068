//! Row-sparse gradients of embedding lookups: a step writes only the rows it looked up, SGD and
//! Adam update exactly as their dense forms (Adam lazily, as PyTorch's `SparseAdam`), and a
//! table also used densely gets one correct dense gradient.

use ndarray::{Array2, ArrayD, Axis, array};
use rand::SeedableRng;
use tapegrad::nn::{Embedding, Module};
use tapegrad::optim::{Adam, Optimizer, Sgd};
use tapegrad::{Param, Tape};

fn table(tape: &Tape<f64>, rows: usize) -> Param {
    let values = Array2::from_shape_fn((rows, 3), |(r, c)| ((r * 3 + c) as f64 * 0.37).sin());
    tape.param(values)
}

/// `Σ lookup(ids) · W` for fixed weights `W`, so rows get different gradients.
fn loss<'t>(tape: &'t Tape<f64>, table: Param, ids: &ArrayD<usize>) -> tapegrad::Var<'t, f64> {
    let vectors = tape.get(table).embedding(ids);
    let n = vectors.shape().iter().product::<usize>();
    let weights =
        ArrayD::from_shape_vec(vectors.shape().to_vec(), (0..n).map(|k| 1.0 + k as f64).collect()).unwrap();
    (vectors * tape.constant(weights)).sum()
}

#[test]
fn sgd_writes_only_the_rows_a_step_looked_up() {
    let tape = Tape::<f64>::new();
    let w = table(&tape, 10_000);
    let before = tape.get(w).to_array();
    let ids = array![[5, 9_999], [5, 42]].into_dyn();
    let grads = loss(&tape, w, &ids).backward();
    let rows = grads.sparse_param(w).expect("a row-sparse gradient");
    assert_eq!(rows.rows(), &[5, 9_999, 5, 42]);
    assert_eq!(rows.values().dim(), (4, 3));
    // the dense gradient, for comparison: row 5 gets weights 1..3 and 7..9
    let dense = grads.param(w).unwrap().to_array();
    assert_eq!(
        dense.index_axis(Axis(0), 5).iter().copied().collect::<Vec<_>>(),
        vec![1.0 + 7.0, 2.0 + 8.0, 3.0 + 9.0]
    );
    Sgd::new(vec![w], 0.1).step(&tape, &grads);
    let after = tape.get(w).to_array();
    let changed: Vec<usize> =
        (0..10_000).filter(|&r| after.index_axis(Axis(0), r) != before.index_axis(Axis(0), r)).collect();
    assert_eq!(changed, [5, 42, 9_999]);
    let expected = &before - &(dense * 0.1);
    assert!((&after - &expected).iter().all(|d| d.abs() < 1e-15));
}

/// Adam on a row-sparse gradient updates the touched rows' moments only (PyTorch's
/// `SparseAdam`): a row first touched at the second step starts from zero moments, with the
/// parameter's bias correction for step 2. Rows touched at every step move as dense Adam.
#[test]
fn adam_updates_rows_lazily() {
    let tape = Tape::<f64>::new();
    let w = table(&tape, 4);
    let start = tape.get(w).to_array();
    let mut adam = Adam::new(vec![w], 0.01);
    let first = loss(&tape, w, &array![0].into_dyn()).backward();
    let g0 = first.param(w).unwrap().to_array();
    adam.step(&tape, &first);
    tape.reset();
    let second = loss(&tape, w, &array![0, 2].into_dyn()).backward();
    let g1 = second.param(w).unwrap().to_array();
    adam.step(&tape, &second);
    let after = tape.get(w).to_array();
    let (b1, b2, lr, eps) = (0.9f64, 0.999f64, 0.01, 1e-8);
    let (c1, c2) = (1.0 - b1 * b1, 1.0 - b2 * b2);
    for c in 0..3 {
        // row 0: two ordinary Adam steps
        let (m1, v1) = ((1.0 - b1) * g0[[0, c]], (1.0 - b2) * g0[[0, c]].powi(2));
        let w1 = start[[0, c]] - lr * (m1 / (1.0 - b1)) / ((v1 / (1.0 - b2)).sqrt() + eps);
        let (m2, v2) = (b1 * m1 + (1.0 - b1) * g1[[0, c]], b2 * v1 + (1.0 - b2) * g1[[0, c]].powi(2));
        let w2 = w1 - lr * (m2 / c1) / ((v2 / c2).sqrt() + eps);
        assert!((after[[0, c]] - w2).abs() < 1e-14, "row 0: {} vs {w2}", after[[0, c]]);
        // row 2: its first update, with zero moments and step 2's correction
        let (m, v) = ((1.0 - b1) * g1[[2, c]], (1.0 - b2) * g1[[2, c]].powi(2));
        let w = start[[2, c]] - lr * (m / c1) / ((v / c2).sqrt() + eps);
        assert!((after[[2, c]] - w).abs() < 1e-14, "row 2: {} vs {w}", after[[2, c]]);
        // rows 1 and 3 were never looked up
        assert_eq!((after[[1, c]], after[[3, c]]), (start[[1, c]], start[[3, c]]));
    }
}

#[test]
fn a_table_used_densely_as_well_gets_one_dense_gradient() {
    let tape = Tape::<f64>::new();
    let w = table(&tape, 3);
    let ids = array![1, 1].into_dyn();
    let both = loss(&tape, w, &ids) + tape.get(w).sum() * 10.0;
    let grads = both.backward();
    assert!(grads.sparse_param(w).is_none());
    let g = grads.param(w).unwrap().to_array();
    assert_eq!(g, array![[10.0, 10.0, 10.0], [15.0, 17.0, 19.0], [10.0, 10.0, 10.0]].into_dyn());
}

#[test]
fn changing_a_row_sparse_gradient_makes_it_dense_for_good() {
    let tape = Tape::<f64>::new();
    let w = table(&tape, 5);
    let mut grads = loss(&tape, w, &array![3].into_dyn()).backward();
    assert!(grads.sparse_param(w).is_some());
    grads.param_mut(w).unwrap().map_inplace(|g| g * 2.0);
    assert!(grads.sparse_param(w).is_none());
    assert_eq!(
        grads[w].to_array().index_axis(Axis(0), 3).iter().copied().collect::<Vec<_>>(),
        vec![2.0, 4.0, 6.0]
    );
}

#[test]
fn the_layer_looks_up_ids_given_as_numbers_and_names_its_weight_as_pytorch() {
    let tape = Tape::<f32>::new();
    let layer = Embedding::new(&tape, 6, 2, &mut rand::rngs::StdRng::seed_from_u64(1));
    assert_eq!(layer.parameters()[0].0, "weight");
    let by_number = layer.forward(tape.constant(array![[4.0f32, 0.0]])).to_array();
    let by_id = layer.lookup(&tape, &array![[4, 0]].into_dyn()).to_array();
    assert_eq!(by_number, by_id);
    let message = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        layer.forward(tape.constant(array![1.5f32]));
    }))
    .unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert_eq!(message, "Embedding: id 1.5 is not a whole number ≥ 0; expected ids as whole numbers");
    let error = tape.get(layer.weight).try_embedding(&array![6].into_dyn()).unwrap_err().to_string();
    assert_eq!(error, "embedding: id 6 is out of range for a table of 6 rows (shape [6, 2])");
}

/// Clipping counts a row-sparse gradient's rows (repeats added up first, as the dense gradient
/// has them) and scales them without making the gradient dense.
#[test]
fn clipping_keeps_a_row_sparse_gradient_sparse() {
    use tapegrad::optim::{ClipOptions, clip_grad_norm};
    let tape = Tape::<f64>::new();
    let w = table(&tape, 1_000);
    let other = tape.param(array![3.0, 4.0]);
    let ids = array![7, 7, 9].into_dyn();
    let total = loss(&tape, w, &ids) + (tape.get(other) * tape.constant(array![3.0, 4.0])).sum();
    let mut grads = total.backward();
    let dense_w = grads.param(w).unwrap().to_array();
    let expected = (dense_w.iter().map(|g| g * g).sum::<f64>() + 25.0).sqrt();
    let norm = clip_grad_norm(&[w, other], &mut grads, 1.0, ClipOptions::default()).unwrap();
    assert!((norm - expected).abs() < 1e-12, "{norm} vs {expected}");
    let rows = grads.sparse_param(w).expect("still row-sparse");
    assert_eq!(rows.rows(), &[7, 7, 9]);
    let clipped = grads.param(w).unwrap().to_array();
    assert!((&clipped - &(dense_w / expected)).iter().all(|d| d.abs() < 1e-15));
    assert!((grads[other].to_array()[0] - 3.0 / expected).abs() < 1e-15);
}

/// A table made from a transposed array (not row-major) updates exactly as a row-major copy,
/// with SGD and with Adam, and only in the rows looked up.
#[test]
fn a_table_stored_column_major_updates_as_a_row_major_one() {
    let tape = Tape::<f64>::new();
    let values = Array2::from_shape_fn((3, 6), |(c, r)| ((r * 3 + c) as f64 * 0.37).sin()).reversed_axes();
    let column_major = tape.param(values.clone());
    let row_major = tape.param(values.as_standard_layout().to_owned());
    let ids = array![4, 1, 4].into_dyn();
    let mut sgd = Sgd::new(vec![column_major, row_major], 0.1);
    let mut adam = Adam::new(vec![column_major, row_major], 0.01);
    for step in 0..2 {
        let grads = (loss(&tape, column_major, &ids) + loss(&tape, row_major, &ids)).backward();
        assert!(grads.sparse_param(column_major).is_some() && grads.sparse_param(row_major).is_some());
        if step == 0 {
            sgd.step(&tape, &grads);
        } else {
            adam.step(&tape, &grads);
        }
        tape.reset();
    }
    let after = tape.get(column_major).to_array();
    assert_eq!(after, tape.get(row_major).to_array());
    let changed: Vec<usize> = (0..6)
        .filter(|&r| after.index_axis(Axis(0), r) != values.index_axis(Axis(0), r).into_dyn())
        .collect();
    assert_eq!(changed, [1, 4]);
}
