//! Recording a backward pass with `create_graph` leaks nothing: after `Tape::reset` only the
//! parameters remain, and the heap holds the same number of bytes after every step.
//!
//! The counting allocator counts per thread, so the test harness's own threads do not disturb
//! the figures.

use tapegrad::{GradOptions, Tape};

mod common;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

#[test]
fn create_graph_steps_free_everything_but_the_parameters() {
    let tape = Tape::<f64>::new();
    let w = tape.get(tape.param(ndarray::array![[0.5, -0.3], [0.8, 0.1]]));
    let b = tape.get(tape.param(ndarray::array![0.1, -0.2]));
    let params = tape.len();
    let mut after_reset = Vec::with_capacity(60);
    for step in 0..60 {
        // a loss with a gradient-norm penalty: two recorded backward passes per step
        let x = tape.var(ndarray::array![[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7]]);
        let y = x.matmul(w).tanh() + b;
        let loss = y.square().mean();
        let [gx] = tape.grad(loss, [x], GradOptions { create_graph: true });
        let total = loss + gx.square().sum() * 0.1;
        let [gw, gb] = tape.grad(total, [w, b], GradOptions { create_graph: true });
        let grads = (gw.square().sum() + gb.square().sum()).backward();
        assert!(grads.get(w).is_some());
        drop(grads);
        w.update(|mut v| v.mapv_inplace(|x| x * (1.0 - 1e-3 * step as f64)));
        assert!(tape.len() > 50, "the step recorded its graph ({} nodes)", tape.len());
        tape.reset();
        assert_eq!(tape.len(), params, "only the parameters survive a reset");
        after_reset.push(common::held());
    }
    // The first steps grow the tape's storage to its working size; after that every step ends
    // with exactly the same bytes live.
    let settled = &after_reset[5..];
    assert!(settled.iter().all(|&b| b == settled[0]), "live bytes after each reset: {settled:?}");
}
