//! No crate of the workspace has top-level modules that import each other
//! in a circle.
//!
//! A top-level module is `src/NAME.rs` or `src/NAME/` (everything under it
//! counts as `NAME`); `NAME` depends on `OTHER` when any of its files names
//! a path `crate::OTHER` in code, not comments (inside `use crate::{…}`
//! groups too). A circle
//! means two modules cannot be read, tested or moved apart, which is what
//! each crate's docs promise they can.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module names a text refers to as `crate::NAME`, including
/// the names opening each branch of a `crate::{…}` group.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        // `burnin_crate::x` or `$crate::x` are not this crate's modules.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for branch in split_top_level(&group[..end]) {
                if let Some(name) = leading_ident(branch.trim()) {
                    out.insert(name);
                }
            }
        } else if let Some(name) = leading_ident(rest) {
            out.insert(name);
        }
    }
    out
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn leading_ident(s: &str) -> Option<String> {
    let name: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let is_module = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    is_module.then_some(name)
}

/// The import graph of one crate's top-level modules.
fn graph(src: &Path) -> Graph {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for e in fs::read_dir(src).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            let mut files = Vec::new();
            rust_files(&p, &mut files);
            modules.entry(name).or_default().extend(files);
        } else if let Some(stem) = name.strip_suffix(".rs")
            && stem != "lib"
            && stem != "main"
        {
            modules.entry(stem.to_owned()).or_default().push(p);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(name, files)| {
            let mut uses = BTreeSet::new();
            for f in files {
                let text = fs::read_to_string(&f).unwrap_or_default();
                // Comments (docs' links included) are not imports.
                let code = without_comments(&text);
                uses.extend(
                    referenced(&code)
                        .into_iter()
                        .filter(|m| *m != name && names.contains(m)),
                );
            }
            (name, uses)
        })
        .collect()
}

/// `text` with its `//` comments removed, line by line: a `//` inside a
/// string literal (`"amqp://h/"`) is not a comment, so the code after it
/// is kept. Escaped quotes are skipped; a char literal `'"'` is too.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let bytes = line.as_bytes();
        let mut in_string = false;
        let mut i = 0;
        let mut end = bytes.len();
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_string => i += 1,
                b'"' if !(i > 0 && bytes[i - 1] == b'\'' && bytes.get(i + 1) == Some(&b'\'')) => {
                    in_string = !in_string;
                }
                b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                    end = i;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        out.push_str(&line[..end]);
        out.push('\n');
    }
    out
}

#[test]
fn a_url_in_a_string_does_not_hide_the_code_after_it() {
    let code = without_comments(
        "let u = \"amqp://h/\"; crate::broker::x(); // crate::live\nlet q = '\"'; crate::stack::y(); // crate::http",
    );
    assert!(code.contains("crate::broker::x()"), "{code}");
    assert!(code.contains("crate::stack::y()"), "{code}");
    assert!(!code.contains("crate::live"), "{code}");
    assert!(!code.contains("crate::http"), "{code}");
}

/// Every set of two or more modules that reach each other (Tarjan's
/// strongly connected components).
fn circles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        let g = s.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn crate_sources(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for parent in [root.to_path_buf(), root.join("bins")] {
        for e in fs::read_dir(&parent).into_iter().flatten().flatten() {
            let src = e.path().join("src");
            if e.path().join("Cargo.toml").is_file() && src.is_dir() {
                out.push(src);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_crate_has_modules_that_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crates = crate_sources(&root);
    assert!(
        crates.len() >= 10,
        "found only {} crates under {}",
        crates.len(),
        root.display()
    );
    let mut found = Vec::new();
    for src in &crates {
        for circle in circles(&graph(src)) {
            found.push(format!("{}: {}", src.display(), circle.join(" <-> ")));
        }
    }
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle_and_its_paths() {
    assert_eq!(
        referenced(
            "use crate::{a::X, b, c::{d, e}};\nlet x = crate::f::g(); $crate::h; my_crate::i"
        ),
        ["a", "b", "c", "f"].map(String::from).into()
    );
    let g: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(circles(&g), vec![vec!["a", "b", "c"]]);
    let tree: Graph = [("a", vec!["b"]), ("b", vec![])]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
        .collect();
    assert!(circles(&tree).is_empty());
}
