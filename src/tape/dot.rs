//! Graphviz DOT pictures of the computational graph that produced a value: variables as
//! ellipses, operations as boxes, optionally labelled with values and gradients.

use std::collections::HashSet;
use std::fmt::Write;

use slotmap::Key;

use crate::float::Float;
use crate::tape::{Gradients, NodeId, Tape, Var};
use crate::value::Value;

/// What [`Tape::to_dot`] writes in the labels.
#[derive(Clone, Copy)]
pub struct DotOptions<'g, F: Float> {
    /// Show each variable's value (small arrays in full, larger ones as their shape).
    pub values: bool,
    /// Show the gradient of each leaf from this backward pass.
    pub grads: Option<&'g Gradients<F>>,
}

impl<F: Float> Default for DotOptions<'_, F> {
    fn default() -> Self {
        DotOptions { values: true, grads: None }
    }
}

impl<F: Float> Tape<F> {
    /// The graph that computed `output`, as Graphviz DOT (render with `dot -Tpng`).
    ///
    /// ```
    /// use tapegrad::{DotOptions, Tape};
    /// let tape = Tape::<f64>::new();
    /// let apple = tape.var(100.0).named("apple");
    /// let num = tape.var(2.0).named("num");
    /// let price = (apple * num).named("price");
    /// let grads = price.backward();
    /// let dot = tape.to_dot(price, DotOptions { values: true, grads: Some(&grads) });
    /// assert!(dot.starts_with("digraph"));
    /// assert!(dot.contains("apple\\n100\\ngrad 2"));
    /// assert!(dot.contains("label=\"mul\""));
    /// ```
    #[track_caller]
    pub fn to_dot(&self, output: Var<'_, F>, options: DotOptions<'_, F>) -> String {
        let _ = output.shape(); // reports a freed or foreign handle
        let inner = self.inner.borrow();
        let mut seen = HashSet::new();
        let mut stack = vec![output.id()];
        let mut order = Vec::new();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                order.push(id);
                stack.extend(inner.nodes[id].parents.iter().copied());
            }
        }
        order.reverse();
        let key = |id: NodeId| format!("n{}", id.data().as_ffi() & 0xffff_ffff);
        let mut out = String::from("digraph g {\n  rankdir=LR;\n");
        for &id in &order {
            let node = &inner.nodes[id];
            let mut label = inner.names.get(id).cloned().unwrap_or_default();
            if options.values {
                push_line(&mut label, &describe(&node.value));
            }
            if let Some(g) = options.grads.filter(|g| g.tape_id() == self.id()).and_then(|g| g.by_id(id)) {
                push_line(&mut label, &format!("grad {}", describe(g)));
            }
            let style = if node.requires_grad { "fillcolor=orange" } else { "fillcolor=lightgray" };
            let _ = writeln!(out, "  {} [label=\"{label}\", shape=ellipse, style=filled, {style}];", key(id));
            if let Some(op) = &node.op {
                let _ = writeln!(
                    out,
                    "  op{} [label=\"{}\", shape=box, style=filled, fillcolor=lightblue];",
                    key(id),
                    op.label()
                );
                let _ = writeln!(out, "  op{} -> {};", key(id), key(id));
                for &p in &node.parents {
                    let _ = writeln!(out, "  {} -> op{};", key(p), key(id));
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

fn push_line(label: &mut String, line: &str) {
    if !label.is_empty() {
        label.push_str("\\n");
    }
    label.push_str(line);
}

/// A value for a label: scalars and arrays of up to 6 elements in full, larger ones by shape.
fn describe<F: Float>(v: &Value<F>) -> String {
    match v {
        Value::Scalar(x) => number(x.as_f64()),
        Value::Array(a) if a.len() <= 6 => {
            let items: Vec<_> = a.iter().map(|x| number(x.as_f64())).collect();
            format!("{:?} [{}]", a.shape(), items.join(", "))
        }
        Value::Array(a) => format!("{:?}", a.shape()),
    }
}

/// A number rounded to 6 significant digits, without trailing zeros.
pub(crate) fn number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = 5 - x.abs().log10().floor() as i32;
    if !(0..=12).contains(&digits) {
        return format!("{x:.5e}");
    }
    let s = format!("{x:.*}", digits as usize);
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    s.to_string()
}
