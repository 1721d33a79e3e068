//! [`TapeStats`]: what a tape holds, by op — for finding what fills memory in a long loop.
//!
//! Invariant: a snapshot; it borrows nothing from the tape.

use std::collections::BTreeMap;
use std::fmt;

use crate::float::Float;
use crate::tape::Tape;
use crate::tape::record::node_bytes;

/// The nodes of one kind on a tape: an op's name, or `leaf`/`constant`/`parameter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpStats {
    /// The op's name, or the kind of leaf.
    pub name: String,
    /// How many nodes.
    pub nodes: usize,
    /// Bytes held by their values and the nodes themselves (the op, not counted, is small).
    pub bytes: usize,
}

/// What a tape holds, by op, largest first; `Display` prints it as a table.
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f32>::new();
/// let w = tape.param(ndarray::Array2::<f32>::zeros((100, 10)));
/// let x = tape.var(ndarray::Array2::<f32>::ones((4, 100)));
/// let y = x.matmul(tape.get(w)).relu();
/// let stats = tape.stats();
/// assert_eq!(stats.nodes, 4);
/// assert_eq!(stats.by_op[0].name, "parameter");          // 100·10 f32s, the largest
/// assert_eq!(stats.by_op[0].nodes, 1);
/// assert!(stats.to_string().contains("matmul"));
/// # let _ = y;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeStats {
    /// All nodes.
    pub nodes: usize,
    /// All bytes, as in [`OpStats::bytes`].
    pub bytes: usize,
    /// By op, largest first.
    pub by_op: Vec<OpStats>,
}

impl<F: Float> Tape<F> {
    /// The node count and bytes held, by op.
    pub fn stats(&self) -> TapeStats {
        let inner = self.inner.borrow();
        let mut rows: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for node in inner.nodes.values() {
            let kind = match (&node.op, node.persistent, node.requires_grad) {
                (Some(op), _, _) => op.name(),
                (None, true, true) => "parameter",
                (None, true, false) => "buffer",
                (None, false, true) => "leaf",
                (None, false, false) => "constant",
            };
            let row = rows.entry(kind).or_default();
            row.0 += 1;
            row.1 += node_bytes(node);
        }
        let mut by_op: Vec<OpStats> = rows
            .into_iter()
            .map(|(name, (nodes, bytes))| OpStats { name: name.to_string(), nodes, bytes })
            .collect();
        by_op.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        TapeStats { nodes: inner.nodes.len(), bytes: by_op.iter().map(|r| r.bytes).sum(), by_op }
    }
}

impl fmt::Display for TapeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<20} {:>10} {:>14}", "op", "nodes", "bytes")?;
        for row in &self.by_op {
            writeln!(f, "{:<20} {:>10} {:>14}", row.name, row.nodes, row.bytes)?;
        }
        write!(f, "{:<20} {:>10} {:>14}", "total", self.nodes, self.bytes)
    }
}
