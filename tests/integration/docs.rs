//! The documentation holds together: every alert's `runbook_url` (in `rules/` and the copies in
//! `deploy/`) lands on a heading of docs/runbooks.md, every relative link in the markdown
//! points at a file (and heading) that exists, the runbooks' PromQL parses, and the README stays
//! a front door (at most 16 KiB); and docs/configuration.md says what `--help` says of every
//! flag, variable and default. File reading and `redline --help`: no peers.

use std::collections::{BTreeMap, BTreeSet};
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
        if let Some(title) = line.strip_prefix("## ").filter(|t| t.starts_with("Redline"))
            && !shipped.contains(&github_anchor(title))
        {
            problems.push(format!("{RUNBOOKS}:{n}: section {title} is for an alert no file in rules/ ships"));
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

/// One flag of a command as `--help` shows it.
struct HelpFlag {
    /// `[env: NAME=]`, when the flag has a variable.
    env: Option<String>,
    /// `[default: X]`; `required` for a `[required]` flag; None without either.
    default: Option<String>,
    /// The whole entry, to find the other variables its text names.
    text: String,
}

/// The flags of `redline <command> --help`, by long name (`--help` and `--version` left out).
fn help_flags(command: &[&str]) -> BTreeMap<String, HelpFlag> {
    let mut cmd = std::process::Command::new(crate::common::redline_bin());
    cmd.args(command).arg("--help");
    // Values of the variables would show in `[env: X=value]`; none should.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("REDLINE_") || k.starts_with("OTEL_")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("run redline --help");
    assert!(out.status.success(), "{command:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let start = Regex::new(r"^\s+(?:-\w, )?--([a-z0-9-]+)").expect("regex");
    let env = Regex::new(r"\[env: ([A-Z0-9_]+)=").expect("regex");
    let default = Regex::new(r"\[default: ([^\]]*)\]").expect("regex");
    let mut flags = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let finish = |current: Option<(String, String)>, flags: &mut BTreeMap<String, HelpFlag>| {
        if let Some((name, block)) = current
            && name != "help"
            && name != "version"
        {
            let default = default
                .captures(&block)
                .map(|c| c[1].to_string())
                .or_else(|| block.contains("[required]").then(|| "required".to_string()));
            let env = env.captures(&block).map(|c| c[1].to_string());
            flags.insert(name, HelpFlag { env, default, text: block });
        }
    };
    for line in text.lines() {
        if let Some(c) = start.captures(line) {
            finish(current.take(), &mut flags);
            current = Some((c[1].to_string(), String::new()));
        }
        if let Some((_, block)) = &mut current {
            block.push_str(line);
            block.push('\n');
        }
    }
    finish(current, &mut flags);
    flags
}

/// One flag of a table of docs/configuration.md.
struct DocFlag {
    line: usize,
    envs: Vec<String>,
    /// The default cell without backticks (its share of it, in a row of several flags).
    default: Option<String>,
}

/// The flags of the first table under the heading `heading` of docs/configuration.md: the
/// columns named flag, env (or variable) and default.
fn doc_flags(heading: &str) -> BTreeMap<String, DocFlag> {
    let text = read("docs/configuration.md");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.trim_start_matches('#').trim() == heading).unwrap_or_else(|| {
        panic!("docs/configuration.md: no heading {heading:?}");
    });
    let table_start = (at..lines.len()).find(|&i| lines[i].starts_with('|')).expect("a table under the heading");
    let cells =
        |l: &str| -> Vec<String> { l.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect() };
    let header = cells(lines[table_start]);
    let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
    let flag_col = col(&["flag"]).expect("a flag column");
    let env_col = col(&["env", "variable"]);
    let default_col = col(&["default"]);
    let flag_re = Regex::new(r"`--([a-z0-9-]+)").expect("regex");
    let env_re = Regex::new(r"`([A-Z][A-Z0-9_]+)`").expect("regex");
    let mut out = BTreeMap::new();
    for (i, line) in lines.iter().enumerate().skip(table_start + 2) {
        if !line.starts_with('|') {
            break;
        }
        let row = cells(line);
        let flags: Vec<String> = flag_re.captures_iter(&row[flag_col]).map(|c| c[1].to_string()).collect();
        let envs: Vec<String> =
            env_col.map_or(Vec::new(), |c| env_re.captures_iter(&row[c]).map(|m| m[1].to_string()).collect());
        let default = default_col.map(|c| row[c].replace('`', ""));
        // `--window`, `--step` | `30m`, `30s`: each flag its share of the default.
        let shares: Vec<String> = match &default {
            Some(d) if flags.len() > 1 && d.split(", ").count() == flags.len() => {
                d.split(", ").map(str::to_string).collect()
            }
            Some(d) => vec![d.clone(); flags.len()],
            None => Vec::new(),
        };
        for (k, flag) in flags.iter().enumerate() {
            let default = shares.get(k).cloned();
            out.insert(flag.clone(), DocFlag { line: i + 1, envs: envs.clone(), default });
        }
    }
    out
}

/// A table of docs/configuration.md: its heading, and whether its defaults are the flags'.
type Table = (&'static str, bool);

/// What a table says of a flag without a default in `--help`.
const NO_DEFAULT: [&str; 7] = ["none", "required", "off", "all", "both", "all checks", "every check"];

/// docs/configuration.md and `--help` agree: every flag of each command's `--help` is in its
/// table with the same variable (and the OpenTelemetry variables the table adds are named in the
/// help) and the same default, and every flag of the table is in `--help`. The sidecar's table is
/// the one its keys (src/config/keys.rs) are documented in.
#[test]
fn configuration_reference_and_help_agree_on_flags_variables_and_defaults() {
    let mut problems = Vec::new();
    // (command, headings of its tables, whether the tables give defaults)
    let commands: [(&[&str], &[Table]); 5] = [
        (&["sidecar"], &[("The sidecar's keys", true)]),
        (&["receiver"], &[("`redline receiver`", true)]),
        (&["alerts", "list"], &[("`redline alerts list`", true)]),
        (&["canary", "judge"], &[("`redline canary judge`", true)]),
        // The readiness section's flags: their defaults are the checks', not the flags'.
        (&["readiness-check"], &[("`redline readiness-check`", true), ("The `readiness` section", false)]),
    ];
    for (command, tables) in commands {
        let name = command.join(" ");
        let help = help_flags(command);
        let mut documented = BTreeMap::new();
        for &(heading, with_defaults) in tables {
            for (flag, doc) in doc_flags(heading) {
                documented.insert(flag, (heading, with_defaults, doc));
            }
        }
        for (flag, h) in &help {
            let Some((heading, with_defaults, doc)) = documented.get(flag) else {
                problems.push(format!("redline {name} --{flag}: in --help, not in docs/configuration.md"));
                continue;
            };
            let at = format!("docs/configuration.md:{} ({heading}) --{flag}", doc.line);
            match &h.env {
                Some(env) if !doc.envs.contains(env) => {
                    problems.push(format!("{at}: --help says variable {env}, the table {:?}", doc.envs));
                }
                None if !doc.envs.is_empty() && !doc.envs.iter().all(|e| h.text.contains(e)) => {
                    problems.push(format!("{at}: --help has no variable, the table {:?}", doc.envs));
                }
                _ => {}
            }
            for env in doc.envs.iter().filter(|e| h.env.as_ref() != Some(*e)) {
                if !h.text.contains(env.as_str()) {
                    problems.push(format!("{at}: the table names {env}, --help does not"));
                }
            }
            if !with_defaults {
                continue;
            }
            match (&h.default, &doc.default) {
                (Some(hd), Some(dd)) if hd == dd => {}
                (None, Some(dd)) if NO_DEFAULT.contains(&dd.as_str()) => {}
                (hd, dd) => problems.push(format!("{at}: default {dd:?} in the table, {hd:?} in --help")),
            }
        }
        for (flag, (heading, _, doc)) in &documented {
            if !help.contains_key(flag) {
                problems.push(format!(
                    "docs/configuration.md:{} ({heading}): --{flag} is not a flag of redline {name}",
                    doc.line
                ));
            }
        }
    }
    assert!(problems.is_empty(), "docs/configuration.md and --help disagree:\n{}", problems.join("\n"));
}
