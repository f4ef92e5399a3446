//! The documentation holds together: every alert's `runbook_url` (in `rules/` and the copies in
//! `deploy/`) lands on a heading of docs/runbooks.md, every relative link in the markdown
//! points at a file (and heading) that exists, the runbooks' PromQL parses, and the README stays
//! a front door (at most 16 KiB). Pure file reading: no binary, no peers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regex::Regex;

const README_LIMIT: usize = 16 * 1024;
const RUNBOOKS: &str = "docs/runbooks.md";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: cannot read: {e}"))
}

/// The files under `dir` (relative to the repository) whose names end with one of `exts`, sorted.
fn files_under(dir: &str, exts: &[&str]) -> Vec<String> {
    fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: cannot list: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, exts, out);
            } else if exts.iter().any(|x| path.to_string_lossy().ends_with(x)) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), exts, &mut out);
    let mut rel: Vec<String> =
        out.iter().map(|p| p.strip_prefix(root()).expect("under the root").to_string_lossy().into_owned()).collect();
    rel.sort();
    rel
}

/// GitHub's anchor for a heading's text: lower case, markup and punctuation dropped (letters,
/// digits, `-` and `_` stay), each space a `-`.
fn github_anchor(heading: &str) -> String {
    // A link in a heading shows its text only.
    let text = Regex::new(r"\[([^\]]*)\]\([^)]*\)").expect("regex").replace_all(heading, "$1");
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a markdown file outside fenced code blocks, with their line numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// The anchors of every heading of a markdown file, as GitHub numbers repeated ones (`x`, `x-1`).
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(rest) = line.strip_prefix('#') else { continue };
        let title = rest.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let base = github_anchor(title);
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// `(line, target)` of every inline or reference-style link and image outside code.
fn links(text: &str) -> Vec<(usize, String)> {
    let inline = Regex::new(r#"\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)"#).expect("regex");
    let reference = Regex::new(r"^\s*\[[^\]]+\]:\s*(\S+)").expect("regex");
    let code_span = Regex::new(r"`[^`]*`").expect("regex");
    let mut out = Vec::new();
    for (n, line) in prose_lines(text) {
        let line = code_span.replace_all(line, "");
        for c in inline.captures_iter(&line).chain(reference.captures_iter(&line)) {
            out.push((n, c[1].to_string()));
        }
    }
    out
}

#[test]
fn anchors_follow_githubs_rules() {
    for (heading, anchor) in [
        ("RedlineHighErrorRatio", "redlinehigherrorratio"),
        ("Who is at fault: `error_type`", "who-is-at-fault-error_type"),
        ("The floor: `scripts/bench-proxy-floor.sh`", "the-floor-scriptsbench-proxy-floorsh"),
        ("`canary`: the judge", "canary-the-judge"),
        ("Benchmark: gRPC unary calls against HAProxy", "benchmark-grpc-unary-calls-against-haproxy"),
        ("See [the docs](docs/x.md) now", "see-the-docs-now"),
    ] {
        assert_eq!(github_anchor(heading), anchor, "anchor of the heading {heading:?}");
    }
    let anchors = heading_anchors("# A\n## Tests\n```\n# not a heading\n```\n### Tests\n#nospace\n");
    let want: BTreeSet<String> = ["a", "tests", "tests-1"].into_iter().map(String::from).collect();
    assert_eq!(anchors, want, "headings in code blocks and without a space are no headings; repeats get -1");
}

#[test]
fn readme_is_at_most_16_kib() {
    let size = read("README.md").len();
    assert!(
        size <= README_LIMIT,
        "README.md is {size} bytes, over the {README_LIMIT}-byte limit: move reference material into docs/ \
         and link to it"
    );
}

/// Every `runbook_url` in the rule files, their unit tests and the manifests generated from them
/// names docs/runbooks.md with the anchor of its own alert's heading.
#[test]
fn every_runbook_url_resolves_to_its_alerts_heading_in_docs_runbooks() {
    let anchors = heading_anchors(&read(RUNBOOKS));
    let name_re = Regex::new(r#"^\s*-?\s*(?:alert|alertname):\s*"?([A-Za-z_:][A-Za-z0-9_:]*)"?\s*$"#).expect("regex");
    let url_re = Regex::new(r#"runbook_url:\s*"?([^"\s]+)"?"#).expect("regex");
    let mut files = files_under("rules", &[".yml", ".yaml"]);
    files.extend(files_under("deploy", &[".yml", ".yaml"]));
    let (mut checked, mut problems) = (0, Vec::new());
    for file in &files {
        let mut alert: Option<String> = None;
        for (i, line) in read(file).lines().enumerate() {
            if let Some(c) = name_re.captures(line) {
                alert = Some(c[1].to_string());
            }
            let Some(c) = url_re.captures(line) else { continue };
            let (at, url) = (format!("{file}:{}", i + 1), &c[1]);
            checked += 1;
            let Some((page, anchor)) = url.split_once('#') else {
                problems.push(format!(
                    "{at}: runbook_url {url} has no #anchor; expected ...{RUNBOOKS}#<alert name in lower case>"
                ));
                continue;
            };
            if !page.ends_with(RUNBOOKS) {
                problems.push(format!("{at}: runbook_url {url} does not point at {RUNBOOKS}"));
            } else if !anchors.contains(anchor) {
                problems.push(format!("{at}: runbook_url anchor #{anchor} matches no heading of {RUNBOOKS}; add a `## <AlertName>` section"));
            }
            match &alert {
                Some(name) if github_anchor(name) != anchor => problems.push(format!(
                    "{at}: the runbook_url of {name} points at #{anchor}, expected #{} (its own section)",
                    github_anchor(name)
                )),
                None => problems.push(format!("{at}: runbook_url {url} with no alert or alertname above it")),
                _ => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} runbook_url(s) do not resolve:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(checked >= 14, "found only {checked} runbook_url(s) in rules/ and deploy/; is the pattern still right?");
}

/// Each shipped alert has a `runbook_url`, and each alert section of the runbooks belongs to an
/// alert some rule file ships (no runbook left behind by a renamed alert).
#[test]
fn every_shipped_alert_has_a_runbook_and_every_runbook_an_alert() {
    let alert_re = Regex::new(r"^\s*-\s*alert:\s*(\S+)\s*$").expect("regex");
    let mut shipped = BTreeSet::new();
    let mut problems = Vec::new();
    for file in files_under("rules", &[".yml"]).into_iter().filter(|f| !f.ends_with("_test.yml")) {
        let text = read(&file);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(c) = alert_re.captures(line) else { continue };
            shipped.insert(github_anchor(&c[1]));
            let rest = &lines[i + 1..];
            let end = rest.iter().position(|l| alert_re.is_match(l) || l.trim_start().starts_with("- record:"));
            if !rest[..end.unwrap_or(rest.len())].iter().any(|l| l.contains("runbook_url:")) {
                problems.push(format!("{file}:{}: alert {} has no annotations.runbook_url", i + 1, &c[1]));
            }
        }
    }
    let runbooks = read(RUNBOOKS);
    for (n, line) in prose_lines(&runbooks) {
        if let Some(title) = line.strip_prefix("## ").filter(|t| t.starts_with("Redline")) {
            if !shipped.contains(&github_anchor(title)) {
                problems.push(format!("{RUNBOOKS}:{n}: section {title} is for an alert no file in rules/ ships"));
            }
        }
    }
    assert!(problems.is_empty(), "runbooks and alerts disagree:\n{}", problems.join("\n"));
    assert!(shipped.len() >= 14, "found only {} alerts in rules/", shipped.len());
}

/// Relative links in the project's markdown point at files that exist, and at a heading of the
/// target (or of the same page) when they carry an anchor.
#[test]
fn relative_links_in_the_docs_point_at_existing_files_and_headings() {
    let mut pages: Vec<String> = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md", "rules/README.md", "fuzz/README.md"]
        .into_iter()
        .map(String::from)
        .collect();
    pages.extend(files_under("docs", &[".md"]));
    let (mut checked, mut problems) = (0, Vec::new());
    for page in &pages {
        let text = read(page);
        let dir = Path::new(page).parent().unwrap_or(Path::new(""));
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let at = format!("{page}:{line}");
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let rel = if path.is_empty() { PathBuf::from(page) } else { dir.join(path) };
            let file = root().join(&rel);
            if !file.exists() {
                problems.push(format!("{at}: link to {target}: {} does not exist", rel.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if !file.to_string_lossy().ends_with(".md") {
                problems.push(format!("{at}: link to {target}: an anchor into a file that is not markdown"));
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if !heading_anchors(&text).contains(anchor) {
                problems
                    .push(format!("{at}: link to {target}: no heading of {} has the anchor #{anchor}", rel.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{} broken link(s) of {checked}:\n{}", problems.len(), problems.join("\n"));
    assert!(checked >= 30, "found only {checked} relative links; is the link pattern still right?");
}

/// The queries the runbooks tell a responder to run are PromQL Prometheus accepts.
#[test]
fn runbook_queries_parse_as_promql() {
    let text = read(RUNBOOKS);
    let block = Regex::new(r"(?s)```promql\n(.*?)```").expect("regex");
    let (mut checked, mut problems) = (0, Vec::new());
    for c in block.captures_iter(&text) {
        // One query per line; a line starting with two spaces continues the one above.
        let mut queries: Vec<String> = Vec::new();
        for line in c[1].lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            match queries.last_mut() {
                Some(q) if line.starts_with("  ") => q.push_str(line),
                _ => queries.push(line.to_string()),
            }
        }
        for q in queries {
            checked += 1;
            if let Err(e) = promql_parser::parser::parse(&q) {
                problems.push(format!("{q}\n  {e}"));
            }
        }
    }
    assert!(problems.is_empty(), "{RUNBOOKS}: queries that do not parse as PromQL:\n{}", problems.join("\n"));
    assert!(checked >= 14, "found only {checked} queries in {RUNBOOKS}");
}
