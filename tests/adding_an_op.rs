//! `docs/ADDING_AN_OP.md` quotes the crate's own code: every block marked
//! `<!-- in src/… -->` must stand, line for line, in that file. So the page cannot drift from
//! the code it teaches (its runnable blocks are doc tests, through `src/lib.rs`).

use std::path::Path;

#[test]
fn every_quoted_block_stands_in_its_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/ADDING_AN_OP.md")).unwrap();
    let lines: Vec<&str> = page.lines().collect();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(file) = line.strip_prefix("<!-- in ").and_then(|rest| rest.strip_suffix(" -->")) else {
            continue;
        };
        assert!(
            lines[i + 1].trim_start().starts_with("```"),
            "line {}: a quoted block follows the marker",
            i + 2
        );
        let indent = lines[i + 1].len() - lines[i + 1].trim_start().len();
        let block: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with("```"))
            .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
            .collect();
        let source = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let source: Vec<&str> = source.lines().collect();
        let found = source.windows(block.len()).any(|window| window == block.as_slice());
        assert!(
            found,
            "docs/ADDING_AN_OP.md line {}: this block is not in {file}:\n{}",
            i + 3,
            block.join("\n")
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} quoted blocks found");
}
