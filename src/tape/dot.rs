//! Graphviz DOT pictures of the computational graph that produced a value: variables as
//! ellipses, operations as boxes, optionally labelled with values and gradients.

use std::collections::HashSet;
use std::fmt::Write;

use slotmap::Key;

use crate::float::Float;
use crate::tape::grad::Edge;
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
        let order = self.graph_of(output);
        let inner = self.inner.borrow();
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
            write_node(&mut out, id, &label, node.requires_grad);
            if let Some(op) = &node.op {
                write_op(&mut out, id, &op.label(), "");
                for &p in &node.parents {
                    let _ = writeln!(out, "  {} -> op{};", key(p), key(id));
                }
            }
        }
        out.push_str("}\n");
        out
    }

    /// The graph that computed the scalar `output` with its backward pass drawn on it, as
    /// Graphviz DOT: each variable shows its name and value (the leaves also their gradient),
    /// and each edge is labelled, in red, with the gradient of `output` flowing back along it.
    /// The edge from an op to its result carries the result's gradient; the edge from an input
    /// to the op carries what the op's backward rule makes of it for that input. An input used
    /// by several ops gets one edge per use, and its gradient is their sum. Edges from inputs
    /// that need no gradient (constants) have no label.
    ///
    /// It runs its own backward pass (the rules the tape always runs, so the numbers are those
    /// of [`Var::backward`]) and panics where `backward` would: a non-scalar `output`, a freed
    /// or foreign handle.
    ///
    /// On the course's apples, `price = apple · apple_num · tax`:
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let apple = tape.var(100.0).named("apple");
    /// let apple_num = tape.var(2.0).named("apple_num");
    /// let tax = tape.var(1.1).named("tax");
    /// let price = (apple * apple_num * tax).named("price");
    /// let dot = tape.to_dot_backward(price);
    /// assert!(dot.contains("label=\"apple\\n100\\ngrad 2.2\""));
    /// assert!(dot.contains("label=\"tax\\n1.1\\ngrad 200\""));
    /// // six edges, two into each mul and one out of each, all labelled
    /// assert_eq!(dot.matches("fontcolor=red").count(), 6);
    /// assert!(dot.contains("[label=\"1.1\", fontcolor=red]"));  // into apple·apple_num
    /// assert!(dot.contains("[label=\"110\", fontcolor=red]"));  // from apple_num
    /// ```
    #[track_caller]
    pub fn to_dot_backward(&self, output: Var<'_, F>) -> String {
        let order = self.graph_of(output);
        let (grads, edges) = crate::error::or_panic(self.backward_edges(output, &order));
        let inner = self.inner.borrow();
        let mut out = String::from("digraph g {\n  rankdir=LR;\n");
        for &id in &order {
            let node = &inner.nodes[id];
            let mut label = inner.names.get(id).cloned().unwrap_or_default();
            push_line(&mut label, &describe(&node.value));
            if node.op.is_none()
                && let Some(g) = grads.by_id(id)
            {
                push_line(&mut label, &format!("grad {}", describe(g)));
            }
            write_node(&mut out, id, &label, node.requires_grad);
            if let Some(op) = &node.op {
                let gy = grads.by_id(id).map(|g| red(&describe(g))).unwrap_or_default();
                write_op(&mut out, id, &op.label(), &gy);
                // this node's edges in the order of its inputs; an input used twice has two
                let mut mine: Vec<&Edge<F>> = edges.iter().filter(|e| e.1 == id).collect();
                for &p in &node.parents {
                    let label = match mine.iter().position(|e| e.0 == p) {
                        Some(i) => red(&describe(&mine.remove(i).2)),
                        None => String::new(),
                    };
                    let _ = writeln!(out, "  {} -> op{}{label};", key(p), key(id));
                }
            }
        }
        out.push_str("}\n");
        out
    }

    /// The nodes that computed `output`, inputs before the nodes that use them.
    #[track_caller]
    fn graph_of(&self, output: Var<'_, F>) -> Vec<NodeId> {
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
        order
    }
}

/// A node's name in the DOT text: `n` and its slot.
fn key(id: NodeId) -> String {
    format!("n{}", id.data().as_ffi() & 0xffff_ffff)
}

/// A variable: an ellipse, orange when it needs a gradient.
fn write_node(out: &mut String, id: NodeId, label: &str, requires_grad: bool) {
    let style = if requires_grad { "fillcolor=orange" } else { "fillcolor=lightgray" };
    let _ = writeln!(out, "  {} [label=\"{label}\", shape=ellipse, style=filled, {style}];", key(id));
}

/// The op that made node `id`: a box, and its edge to the result (with `edge` attributes).
fn write_op(out: &mut String, id: NodeId, label: &str, edge: &str) {
    let _ =
        writeln!(out, "  op{} [label=\"{label}\", shape=box, style=filled, fillcolor=lightblue];", key(id));
    let _ = writeln!(out, "  op{} -> {}{edge};", key(id), key(id));
}

/// Edge attributes: `text` as a red label.
fn red(text: &str) -> String {
    format!(" [label=\"{text}\", fontcolor=red]")
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
    if x == 0.0 {
        return "0".to_string(); // and not "-0"
    }
    if !x.is_finite() {
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

#[cfg(test)]
mod tests {
    use crate::Tape;

    #[test]
    fn an_input_used_twice_gets_an_edge_per_use_and_a_constant_none() {
        let tape = Tape::<f64>::new();
        let x = tape.var(3.0).named("x");
        let c = tape.constant(2.0).named("c");
        let y = (x * x * c).named("y");
        let dot = tape.to_dot_backward(y);
        // d(x·x)/dx = x + x: each use carries 2·3 = 6 back, the leaf's gradient is their sum
        assert!(dot.contains("x\\n3\\ngrad 12"), "{dot}");
        assert_eq!(dot.matches("[label=\"6\", fontcolor=red]").count(), 2, "{dot}");
        // x·x's result gets c = 2, on both its edges; the constant's edge has no label
        assert_eq!(dot.matches("[label=\"2\", fontcolor=red]").count(), 2, "{dot}");
        assert!(dot.contains("[label=\"c\\n2\", shape=ellipse, style=filled, fillcolor=lightgray]"));
        assert_eq!(dot.matches(" -> ").count(), 6);
        assert_eq!(dot.matches("fontcolor=red").count(), 5);
        assert_eq!(super::number(-0.0), "0");
    }

    #[test]
    #[should_panic(expected = "backward: the output has shape [2]")]
    fn a_non_scalar_output_is_refused_as_backward_refuses_it() {
        let tape = Tape::<f64>::new();
        let x = tape.var(vec![1.0, 2.0]);
        tape.to_dot_backward(x * 2.0);
    }
}
