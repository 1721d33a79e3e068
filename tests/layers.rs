//! The layer table of `docs/ARCHITECTURE.md` is true: every module of `src/` is in it, and no
//! code of a module names a module it may not import, in a `use` or inline (`crate::ops::…`,
//! or an item the crate root re-exports from it, such as `crate::Tape`). Comments, and the
//! tests inside a file (`#[cfg(test)] mod tests`, and files compiled for tests only), are not
//! read: a test may drive a lower layer through the higher ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The table under "| module | may import |": each module, and what it may import.
fn layer_table() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md")).unwrap();
    let names =
        |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(String::from).collect() };
    let mut table = BTreeMap::new();
    let rows = text.lines().skip_while(|l| !l.starts_with("| module | may import |")).skip(2);
    for row in rows.take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').collect();
        let allowed: BTreeSet<String> = names(cells[2]).into_iter().collect();
        for module in names(cells[1]) {
            assert!(
                table.insert(module.clone(), allowed.clone()).is_none(),
                "{module} is in the table twice"
            );
        }
    }
    assert!(table.len() > 10, "no layer table found in docs/ARCHITECTURE.md: {table:?}");
    table
}

/// The items `src/lib.rs` re-exports at the root (and the crate's exported macros), by the
/// module they come from.
fn root_items() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(Path::new(ROOT).join("src/lib.rs")).unwrap();
    let mut items = BTreeMap::new();
    let code: String =
        lib.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    for statement in code.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else { continue };
        let Some((module, rest)) = path.split_once("::") else { continue };
        for item in rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|s| !s.is_empty()) {
            items.insert(item.to_string(), module.to_string());
        }
    }
    items.insert("grads".into(), "tape".into()); // #[macro_export] in tape/op.rs
    items.insert("case".into(), "ops".into()); // the op registry's macro, for tests
    items
}

/// Every `.rs` file under `dir`, but the files and folders a `#[cfg(test)] mod name;` declares.
fn sources(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut test_only = BTreeSet::new();
    for parent in ["mod.rs", "lib.rs"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(parent)) {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for pair in lines.windows(2) {
                if pair[0] == "#[cfg(test)]"
                    && let Some(rest) = pair[1].split("mod ").nth(1)
                {
                    let name = rest.trim_end_matches(';');
                    test_only.insert(format!("{name}.rs"));
                    test_only.insert(name.to_string());
                }
            }
        }
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() && !test_only.contains(&name) {
            sources(&path, files);
        } else if name.ends_with(".rs") && !test_only.contains(&name) {
            files.push(path);
        }
    }
}

/// The code of a file: comments and `#[cfg(test)] mod tests { … }` blocks removed.
fn code(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line == "#[cfg(test)]" && lines.get(i + 1).is_some_and(|l| l.trim().starts_with("mod tests")) {
            let mut depth = 0;
            i += 1;
            while i < lines.len() {
                depth += lines[i].matches('{').count() as i64 - lines[i].matches('}').count() as i64;
                i += 1;
                if depth <= 0 && lines[i - 1].contains('}') {
                    break;
                }
            }
            continue;
        }
        let without_comment = match lines[i].find("//") {
            Some(at) => &lines[i][..at],
            None => lines[i],
        };
        kept.push(without_comment.to_string());
        i += 1;
    }
    kept
}

/// The crate paths a line names: `crate::ops::x` gives `ops`, `crate::{Tape, ops}` both.
fn named(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inside = &group[..group.find('}').unwrap_or(group.len())];
            for part in inside.split(',') {
                let first = part.trim().split("::").next().unwrap_or("");
                found.push(first.trim().to_string());
            }
        } else {
            found.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    found.retain(|n| !n.is_empty() && n != "self");
    found
}

#[test]
fn no_module_imports_a_layer_it_may_not() {
    let table = layer_table();
    let items = root_items();
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| f.strip_prefix(&src).unwrap())
        .filter(|f| *f != Path::new("lib.rs"))
        .map(|f| {
            f.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
        })
        .collect();
    let missing: Vec<&String> = modules.iter().filter(|m| !table.contains_key(*m)).collect();
    assert!(missing.is_empty(), "modules missing from the layer table of docs/ARCHITECTURE.md: {missing:?}");
    let stale: Vec<&String> = table.keys().filter(|m| !modules.contains(*m)).collect();
    assert!(stale.is_empty(), "the layer table names modules that do not exist: {stale:?}");

    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        if relative == Path::new("lib.rs") {
            continue;
        }
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(file).unwrap();
        for line in code(&text) {
            for name in named(&line) {
                let target = items.get(&name).cloned().unwrap_or(name.clone());
                if target != module && !table[&module].contains(&target) {
                    wrong.push(format!(
                        "src/{}: `{}` names {target} ({name})",
                        relative.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layer table:\n{}", wrong.join("\n"));
}
