//! No import circles between modules. Reads `src/` as text: the module tree from `src/lib.rs`
//! and its `mod` declarations, and every path a module names (`use` trees and inline
//! `crate::`/`super::`/`self::`/child-module paths), each landing on the deepest module it
//! names. Test code (`#[cfg(test)]` items and the files they declare) is left out, as
//! `cargo modules` leaves it out by default: production layering is what is checked.
//!
//! For every folder (the crate root, `proxy/`, `telemetry/`, `proxy/upstream/`, ...) the graph
//! among its children (files and subfolders, a subfolder standing for everything under it) must
//! be acyclic. A child using an item of its own folder's `mod.rs` (`super::Thing`) is the
//! ordinary parent/child relation and no edge. A re-export is not followed: naming
//! `forward::ClientInfo` depends on `forward`, whatever module defines it. The one exception is
//! the PromQL evaluator, whose recursion (eval <-> aggregate, binary, functions) is the grammar's.
//! Pure file reading: no binary, no peers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path, e.g. `["proxy", "upstream", "h2"]`; the crate root is empty.
type ModPath = Vec<String>;

/// The allowed circle: the PromQL evaluator's own recursion, inside `rules/promql/`.
const PROMQL_FOLDER: &[&str] = &["rules", "promql"];
const PROMQL_RECURSION: &[&str] = &["aggregate", "binary", "eval", "functions"];

struct Module {
    file: PathBuf,
    /// The source without comments, literals and test code.
    code: String,
}

/// A dependency of one module on another, with the path that makes it.
#[derive(Clone, Debug)]
struct Edge {
    from: ModPath,
    to: ModPath,
    file: PathBuf,
    path: String,
}

/// Source text without comments and the contents of string and char literals (so that paths in
/// docs and messages do not count); lifetimes stay.
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if (c == 'r' || c == 'b') && (i == 0 || !ident(b[i - 1])) && raw_string_start(&b[i..]).is_some() {
            let (prefix, hashes) = raw_string_start(&b[i..]).expect("checked");
            i += prefix;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '"' && b[i + 1..].iter().take(hashes).filter(|&&h| h == '#').count() == hashes {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            i += 2;
            while i < b.len() && b[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if c == '\'' && b.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `r"`, `r#"`, `br"`, ...: the prefix length up to and including the quote, and the hashes.
fn raw_string_start(s: &[char]) -> Option<(usize, usize)> {
    let mut i = 0;
    if s.first() == Some(&'b') {
        i += 1;
    }
    if s.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    (s.get(i) == Some(&'"')).then_some((i + 1, hashes))
}

/// The index just past the item that starts at `at`: its `;`, or its balanced `{ }` block.
fn item_end(code: &str, at: usize) -> usize {
    let bytes = code.as_bytes();
    let mut i = at;
    let mut nesting = 0i32;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' => nesting += 1,
            b')' | b']' => nesting -= 1,
            b';' if nesting == 0 => return i + 1,
            b'{' if nesting == 0 => {
                let mut depth = 0;
                while i < bytes.len() {
                    match bytes[i] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                return i + 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                return i;
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// `code` without its `#[cfg(test)]` items (a `mod tests { .. }`, a `mod props;`, a helper).
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let end = item_end(rest, at + "#[cfg(test)]".len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The child modules a module declares (`mod name;` or `pub mod name;`, outside test code).
fn declared_children(code: &str) -> Vec<String> {
    let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ';')).collect();
    let mut out = Vec::new();
    for w in words.windows(2) {
        if w[0] == "mod"
            && let Some(name) = w[1].strip_suffix(';')
            && !name.is_empty()
        {
            out.push(name.to_string());
        }
    }
    // `mod name ;` with a space.
    for w in code.split_whitespace().collect::<Vec<_>>().windows(3) {
        if w[0] == "mod" && w[2].starts_with(';') && w[1].chars().all(|c| c.is_alphanumeric() || c == '_') {
            out.push(w[1].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every module of the library under `src`, from `lib.rs` down its `mod` declarations.
fn modules(src: &Path) -> BTreeMap<ModPath, Module> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<(ModPath, PathBuf)> = vec![(Vec::new(), src.join("lib.rs"))];
    while let Some((path, file)) = todo.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: cannot read: {e}", file.display()));
        let code = without_tests(&strip(&text));
        // Children of `a/mod.rs` and `lib.rs` sit beside the file; those of `a.rs` in `a/`.
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs" | "lib.rs") => file.parent().expect("parent").to_path_buf(),
            _ => file.with_extension(""),
        };
        for child in declared_children(&code) {
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(&child).join("mod.rs");
            let child_file = if flat.exists() { flat } else { nested };
            let mut child_path = path.clone();
            child_path.push(child);
            todo.push((child_path, child_file));
        }
        out.insert(path, Module { file, code });
    }
    out
}

/// The paths a `use` tree names, each as its segments: `a::{b, c::d as e, self}` gives
/// `a::b`, `a::c::d`, `a`.
fn use_paths(tree: &str) -> Vec<Vec<String>> {
    fn parse(s: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut segs: Vec<String> = prefix.to_vec();
        let mut word = String::new();
        while *i < s.len() {
            let c = s[*i];
            if c == ':' && s.get(*i + 1) == Some(&':') {
                if !word.is_empty() {
                    segs.push(std::mem::take(&mut word));
                }
                *i += 2;
            } else if c == '{' {
                *i += 1;
                loop {
                    parse(s, i, &segs, out);
                    match s.get(*i) {
                        Some(',') => *i += 1,
                        Some('}') => {
                            *i += 1;
                            break;
                        }
                        _ => break,
                    }
                    if s.get(*i) == Some(&'}') {
                        *i += 1;
                        break;
                    }
                }
                return;
            } else if c == ',' || c == '}' {
                break;
            } else if c.is_whitespace() {
                // `d as e`: the name after `as` is local.
                let rest: String = s[*i..].iter().take(4).collect();
                if rest.trim_start().starts_with("as ") {
                    while *i < s.len() && s[*i] != ',' && s[*i] != '}' {
                        *i += 1;
                    }
                    break;
                }
                *i += 1;
            } else {
                word.push(c);
                *i += 1;
            }
        }
        if !word.is_empty() && word != "self" && word != "*" {
            segs.push(word);
        }
        if !segs.is_empty() {
            out.push(segs);
        }
    }
    let chars: Vec<char> = tree.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    parse(&chars, &mut i, &[], &mut out);
    out
}

/// Every path a module's code names: `use` trees, and inline `a::b` paths.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    // `use` declarations (also `pub use`, `pub(crate) use`).
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        out.extend(use_paths(&after[..end]));
        rest = &after[end..];
    }
    // Inline paths: a run of identifiers joined by `::`.
    let chars: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        if ident(chars[i]) && (i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut segs = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && ident(chars[j]) {
                    j += 1;
                }
                segs.push(chars[start..j].iter().collect::<String>());
                if chars.get(j) == Some(&':')
                    && chars.get(j + 1) == Some(&':')
                    && chars.get(j + 2).is_some_and(|&c| ident(c))
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 {
                out.push(segs);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn find_word(s: &str, word: &str) -> Option<usize> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(pos) = s[from..].find(word) {
        let at = from + pos;
        let before = at == 0 || !ident(bytes[at - 1]);
        let after = bytes.get(at + word.len()).is_none_or(|&c| !ident(c));
        if before && after {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The deepest module `segs` names from inside `from`, or None for a path outside the crate.
fn resolve(from: &ModPath, segs: &[String], known: &BTreeMap<ModPath, Module>) -> Option<ModPath> {
    let (mut cur, rest) = match segs.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &segs[1..]),
        Some("self") => (from.clone(), &segs[1..]),
        Some("super") => {
            let mut cur = from.clone();
            let mut k = 0;
            while segs.get(k).map(String::as_str) == Some("super") {
                cur.pop();
                k += 1;
            }
            (cur, &segs[k..])
        }
        Some(first) => {
            let mut child = from.clone();
            child.push(first.to_string());
            if !known.contains_key(&child) {
                return None;
            }
            (from.clone(), segs)
        }
        None => return None,
    };
    for s in rest {
        let mut next = cur.clone();
        next.push(s.clone());
        if known.contains_key(&next) {
            cur = next;
        } else {
            break;
        }
    }
    Some(cur)
}

fn edges(known: &BTreeMap<ModPath, Module>) -> Vec<Edge> {
    let mut out = Vec::new();
    for (from, m) in known {
        for segs in named_paths(&m.code) {
            if let Some(to) = resolve(from, &segs, known)
                && &to != from
            {
                out.push(Edge { from: from.clone(), to, file: m.file.clone(), path: segs.join("::") });
            }
        }
    }
    out
}

/// The circles among the children of every folder, each described with one path per step.
fn circles(src: &Path) -> Vec<String> {
    let known = modules(src);
    let all = edges(&known);
    let folders: BTreeSet<ModPath> =
        known.keys().filter(|p| !p.is_empty()).map(|p| p[..p.len() - 1].to_vec()).collect();
    let mut found = Vec::new();
    for folder in folders {
        let n = folder.len();
        let below = |p: &ModPath| p.len() > n && p[..n] == folder[..];
        // child -> child -> the first edge that makes the dependency
        let mut graph: BTreeMap<String, BTreeMap<String, Edge>> = BTreeMap::new();
        for e in all.iter().filter(|e| below(&e.from) && below(&e.to) && e.from[n] != e.to[n]) {
            graph.entry(e.from[n].clone()).or_default().entry(e.to[n].clone()).or_insert_with(|| e.clone());
        }
        for component in strongly_connected(&graph) {
            let allowed = folder == PROMQL_FOLDER && component.iter().all(|c| PROMQL_RECURSION.contains(&c.as_str()));
            if allowed {
                continue;
            }
            let name = if folder.is_empty() { "src".to_string() } else { format!("src/{}", folder.join("/")) };
            let mut text = format!("{name}: circle among {}:", component.join(", "));
            for a in &component {
                for (b, e) in graph.get(a).into_iter().flatten() {
                    if component.contains(b) {
                        let file = e.file.strip_prefix(src.parent().unwrap_or(src)).unwrap_or(&e.file);
                        text.push_str(&format!("\n  {a} -> {b}: {} names {}", file.display(), e.path));
                    }
                }
            }
            found.push(text);
        }
    }
    found
}

/// Tarjan's strongly connected components with more than one node, each sorted.
fn strongly_connected(graph: &BTreeMap<String, BTreeMap<String, Edge>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, Edge>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, st: &mut State<'a>) {
        let i = st.index.len();
        st.index.insert(v, i);
        st.low.insert(v, i);
        st.stack.push(v);
        st.on_stack.insert(v);
        let graph = st.graph;
        for w in graph.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !st.index.contains_key(w) {
                visit(w, st);
                let lw = st.low[w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if st.on_stack.contains(w) {
                let iw = st.index[w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut component = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                st.out.push(component);
            }
        }
    }
    let mut st = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> =
        graph.iter().flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.keys().map(String::as_str))).collect();
    for v in nodes {
        if !st.index.contains_key(v) {
            visit(v, &mut st);
        }
    }
    st.out
}

/// This repository's `src/`, or the one `REDLINE_MODULE_GRAPH_SRC` names (to check another
/// checkout, e.g. an older commit's tree).
fn src() -> PathBuf {
    std::env::var_os("REDLINE_MODULE_GRAPH_SRC")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), PathBuf::from)
}

#[test]
fn no_import_circles_between_modules_but_the_promql_evaluators_recursion() {
    let known = modules(&src());
    // The walk found the tree: the jobs, and the folders whose circles were removed.
    for m in ["cli", "config", "proxy::upstream::h2", "telemetry::otlp::encode", "rules::promql::eval"] {
        let path: ModPath = m.split("::").map(String::from).collect();
        assert!(known.contains_key(&path), "module {m} not found from src/lib.rs");
    }
    assert!(!known.keys().any(|p| p.last().is_some_and(|n| n == "codec_props")), "test-only files are left out");
    let found = circles(&src());
    assert!(
        found.is_empty(),
        "import circles (move the shared definition to the module that owns it):\n{}",
        found.join("\n")
    );
}

/// A copy of `src/` with `line` added to `file`, and the circles the check finds there.
fn circles_with(file: &str, line: &str) -> Vec<String> {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("create dir");
        for entry in std::fs::read_dir(from).expect("list") {
            let path = entry.expect("entry").path();
            let dest = to.join(path.file_name().expect("name"));
            if path.is_dir() {
                copy(&path, &dest);
            } else {
                std::fs::copy(&path, &dest).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let copied = dir.path().join("src");
    copy(&src(), &copied);
    let target = copied.join(file);
    let text = std::fs::read_to_string(&target).expect("read");
    std::fs::write(&target, format!("{line}\n{text}")).expect("write");
    circles(&copied)
}

/// The check fails on the circles this repository had: each is reintroduced in a copy of src/,
/// and the message names the folder, the step the line added and the file it is in.
#[test]
fn a_reintroduced_circle_fails_the_check_naming_the_step_and_the_file() {
    for (file, line, folder, step) in [
        // telemetry reading config's keys while config reads telemetry's buckets
        ("telemetry/spans.rs", "use crate::config::Config;", "src:", "telemetry -> config"),
        // forward <-> tunnel, inside proxy/
        ("proxy/tunnel.rs", "use super::forward::Proxy;", "src/proxy:", "tunnel -> forward"),
        // access_log <-> logging, inside telemetry/, by an inline path
        (
            "telemetry/access_log.rs",
            "fn _x() { let _ = super::logging::init; }",
            "src/telemetry:",
            "access_log -> logging",
        ),
        // a job reaching back into the command line
        ("canary/command.rs", "use crate::cli::Cli;", "src:", "canary -> cli"),
        // a new member of the evaluator's recursion is not excused
        ("rules/promql/labels.rs", "use super::eval::Evaluator;", "src/rules/promql:", "labels -> eval"),
    ] {
        let found = circles_with(file, line);
        let want = format!("\n  {step}: src/{file} names ");
        assert!(
            found.iter().any(|c| c.starts_with(&format!("{folder} circle among")) && c.contains(&want)),
            "{file} + {line:?}: want a circle in {folder} with {want:?}, found {found:#?}"
        );
    }
}

#[test]
fn use_trees_expand_to_their_paths() {
    let paths: Vec<String> =
        use_paths("super::{body::{self, A}, upstream::{B as C, h2::D}, E}").iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["super::body", "super::body::A", "super::upstream::B", "super::upstream::h2::D", "super::E"]);
    let stripped = strip("let s = \"crate::x::y\"; // crate::z\nlet c = 'a'; fn f<'b>() {} r#\"super::q\"#");
    assert!(!stripped.contains("crate::") && !stripped.contains("super::"), "{stripped}");
    assert!(stripped.contains("<'b>"), "lifetimes stay: {stripped}");
    assert_eq!(without_tests("a\n#[cfg(test)]\nmod tests { use x::{y}; }\nb"), "a\n\nb");
}
