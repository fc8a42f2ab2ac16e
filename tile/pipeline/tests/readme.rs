//! The workspace README's Rust blocks are parts of the examples, word for
//! word, so they cannot drift from code that is built and run: each block
//! names its file on its first line (`// tile/pipeline/examples/...`), and
//! each of its pieces (split where a blank line is followed by a line that
//! is not indented) is in that file as written.

use std::fs;

/// The workspace root.
fn root() -> String {
    format!("{}/../..", env!("CARGO_MANIFEST_DIR"))
}

/// The bodies of the ```rust blocks of `md`.
fn rust_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in md.lines() {
        match &mut open {
            None if line.starts_with("```rust") => open = Some(String::new()),
            None => {}
            Some(_) if line == "```" => blocks.extend(open.take()),
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
        }
    }
    assert!(open.is_none(), "a ```rust block is not closed");
    blocks
}

/// `body` cut where a blank line is followed by an unindented line.
fn pieces(body: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut blank = false;
    for line in body.lines() {
        if line.is_empty() {
            blank = true;
            continue;
        }
        let last = out.last_mut().unwrap();
        if blank && !line.starts_with(' ') && !last.is_empty() {
            out.push(String::new());
        } else if blank {
            out.last_mut().unwrap().push('\n');
        }
        blank = false;
        let last = out.last_mut().unwrap();
        last.push_str(line);
        last.push('\n');
    }
    out.retain(|p| !p.is_empty());
    out
}

#[test]
fn the_readme_shows_the_examples_word_for_word() {
    let readme = fs::read_to_string(format!("{}/README.md", root())).unwrap();
    let blocks = rust_blocks(&readme);
    assert!(blocks.len() >= 2, "the README shows a tile and a pipeline");
    for block in blocks {
        let (first, body) = block.split_once('\n').unwrap_or((&block, ""));
        let path = first
            .strip_prefix("// ")
            .unwrap_or_else(|| panic!("a README Rust block names its file first:\n{block}"));
        assert!(path.starts_with("tile/pipeline/examples/"), "{path}");
        let file = fs::read_to_string(format!("{}/{path}", root()))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        for piece in pieces(body) {
            assert!(
                file.contains(&piece),
                "the README shows what {path} does not hold, word for word:\n{piece}"
            );
        }
    }
}
