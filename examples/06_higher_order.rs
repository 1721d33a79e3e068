//! Derivatives of `tanh` up to order 6, each by differentiating the previous one on the tape.
//!
//! `Tape::grad` with `create_graph` records the backward pass as new nodes, so the `n`-th
//! derivative is a graph built from the `(n − 1)`-th one and its backward: it grows with every
//! order. The example prints each derivative at `x = 1`, the size of its graph, and writes the
//! graph as Graphviz DOT (`dot -Tpng tanh_3.dot > tanh_3.png` to look at it).
//!
//! Run with `cargo run --release --example 06_higher_order [-- DIR]`; the DOT files go to `DIR`,
//! else to `$TAPEGRAD_PLOTS`, else to `target/plots/`.

use std::path::Path;

use tapegrad::{DotOptions, GradOptions, Tape};

#[allow(dead_code)]
#[path = "common/plots.rs"]
mod plots;

/// The highest order computed.
pub const ORDER: usize = 6;

/// Computes `dⁿ tanh/dxⁿ` at `x = 1` for `n = 0 … ORDER`, writes `tanh_n.dot` into `dir`, and
/// returns the printed report.
pub fn report(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("the output directory can be created");
    let tape = Tape::<f64>::new();
    let x = tape.var(1.0).named("x");
    let mut derivative = x.tanh().named("y");
    let mut out = String::from("derivatives of tanh at x = 1\n");
    for n in 0..=ORDER {
        if n > 0 {
            let [d] = tape.grad(derivative, [x], GradOptions { create_graph: true });
            derivative = d.named(format!("d{n}y"));
        }
        let dot = tape.to_dot(derivative, DotOptions { values: false, grads: None });
        let (variables, ops) = (dot.matches("shape=ellipse").count(), dot.matches("shape=box").count());
        let file = dir.join(format!("tanh_{n}.dot"));
        std::fs::write(&file, &dot).expect("the DOT file can be written");
        out += &format!(
            "order {n}: {}   graph: {variables} variables, {ops} ops ({})\n",
            derivative.scalar(),
            file.display()
        );
    }
    out
}

#[allow(dead_code)]
fn main() {
    let about = "Derivatives of tanh up to order 6, their graphs written as DOT files into DIR";
    print!("{}", report(&plots::plot_dir(about)));
}
