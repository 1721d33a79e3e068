//! The tidy check of the op registry: every op declared in the source has a case.

use proptest::strategy::{Strategy, ValueTree};

use super::{all, runner};
use crate::Tape;

/// Every op has a case named for it. Each type that implements `Op` anywhere in `src/` is mapped
/// to the names its `fn name()` returns (both of `"max"`/`"min"` for `Extremum`); a row of an op
/// table (`unary_ops! { Exp exp, … }`, `binary_ops! { Add "add", … }`) gives the struct first
/// and its name second. Names are unique across the crate, so a name stands for its type. Each
/// name must be the name of a case, and that case must record an op under that name: an op met
/// only inside another op's case does not count. Ops declared in a `#[cfg(test)] mod tests`
/// block are test fixtures (such as gradcheck's deliberately wrong rules) and are not required
/// to have a case.
#[test]
fn every_op_has_a_property_test_entry() {
    let mut recorded = std::collections::BTreeSet::new();
    for case in all() {
        let sample = (case.strategy)().new_tree(&mut runner(1)).expect("a sample").current();
        let tape = Tape::<f64>::new();
        let x: Vec<_> = sample.inputs.iter().map(|a| tape.var(a.clone())).collect();
        (case.f64)(&x, &sample);
        for op in tape.inner.borrow().nodes.values().filter_map(|node| node.op.as_ref()) {
            recorded.insert((case.name, op.name()));
        }
    }
    let declared = declared_ops(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")));
    assert!(declared.len() > 30, "the scan found only {declared:?}");
    let mut missing = Vec::new();
    let mut owners = std::collections::BTreeMap::new();
    for (op, (names, file)) in &declared {
        if names.is_empty() {
            missing.push(format!("{op} ({file}: no name found in its `fn name()`)"));
        }
        for name in names {
            if let Some(other) = owners.insert(name.clone(), op.clone()) {
                missing.push(format!("{op} and {other} are both named \"{name}\""));
            }
            if !recorded.iter().any(|(case, n)| case == name && n == name) {
                missing.push(format!("{op} \"{name}\" ({file})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ops without a case named for them (or whose case does not record them): {missing:?}"
    );
}

/// The ops declared in the Rust files under `dir`: each struct with its names and its file.
fn declared_ops(dir: &std::path::Path) -> std::collections::BTreeMap<String, (Vec<String>, String)> {
    let mut ops = std::collections::BTreeMap::new();
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("a source folder").map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            ops.extend(declared_ops(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let file = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&path).display().to_string();
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            for (op, names) in ops_in(&text) {
                ops.insert(op, (names, file.clone()));
            }
        }
    }
    ops
}

/// The ops declared in one file's text, with their names, outside `#[cfg(test)] mod tests`.
fn ops_in(text: &str) -> Vec<(String, Vec<String>)> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let literals = |line: &&str| line.split('"').skip(1).step_by(2).map(String::from).collect::<Vec<_>>();
    let mut ops = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line == "#[cfg(test)]" && lines.get(i + 1).is_some_and(|l| l.starts_with("mod tests")) {
            i = block_end(&lines, i + 1);
        } else if let Some(op) = implemented_op(line) {
            // the string literals of its `fn name()`
            let names = match (i..lines.len()).find(|&j| lines[j].starts_with("fn name(")) {
                Some(start) => lines[start..=block_end(&lines, start)].iter().flat_map(literals).collect(),
                None => Vec::new(),
            };
            ops.push((op, names));
        } else if line.ends_with("_ops! {") && !line.starts_with("macro_rules") {
            // an op table: a row starts with the struct, then its name (an identifier or a string)
            for row in &lines[i + 1..block_end(&lines, i)] {
                let mut tokens = row.split_whitespace();
                let op = tokens.next().unwrap_or("");
                if op.starts_with(char::is_uppercase) && op.chars().all(char::is_alphanumeric) {
                    let name = tokens.next().unwrap_or("").trim_end_matches(',').trim_matches('"');
                    ops.push((op.to_string(), if name.is_empty() { vec![] } else { vec![name.to_string()] }));
                }
            }
        }
        i += 1;
    }
    ops
}

/// The index of the line that closes the block opened on line `start`, counting braces.
fn block_end(lines: &[&str], start: usize) -> usize {
    let mut open = 0;
    for (j, line) in lines.iter().enumerate().skip(start) {
        open += line.matches('{').count() as isize - line.matches('}').count() as isize;
        if open <= 0 {
            return j;
        }
    }
    lines.len() - 1
}

/// The struct of an `impl … Op<F> for Struct` line; `None` for any other line, and for the
/// `$Op` of a macro's template.
fn implemented_op(line: &str) -> Option<String> {
    let (head, ty) = line.strip_prefix("impl")?.split_once(" for ")?;
    let op_trait = head.rsplit([' ', ':']).next()?;
    let name: String = ty.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (op_trait.starts_with("Op<") && name.starts_with(char::is_uppercase)).then_some(name)
}
