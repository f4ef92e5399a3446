//! Prometheus rule files: parsing (groups, alerting and recording rules) and validation with
//! errors that name the file, line, group and rule, as `promtool check rules` does.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A rule file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFileDef {
    #[serde(default)]
    groups: Vec<GroupDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDef {
    name: Spanned<String>,
    interval: Option<Spanned<String>>,
    limit: Option<u64>,
    #[serde(default)]
    rules: Vec<Spanned<RuleDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    record: Option<Spanned<String>>,
    alert: Option<Spanned<String>>,
    expr: Spanned<ExprText>,
    #[serde(rename = "for")]
    for_: Option<Spanned<String>>,
    keep_firing_for: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// `expr:` may be written as a YAML string or a bare number (`expr: 1`).
#[derive(Debug)]
struct ExprText(String);

impl<'de> Deserialize<'de> for ExprText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        Ok(ExprText(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
        }))
    }
}

/// A validated rule group.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    /// The file the group came from (groups are identified by file and name).
    pub file: String,
    pub interval: Option<Duration>,
    pub limit: u64,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub kind: RuleKind,
    /// The alert or record name.
    pub name: String,
    pub expr_text: String,
    pub expr: promql_parser::parser::Expr,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub line: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Alerting,
    Recording,
}

/// One problem in a rule file, located as precisely as the YAML allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: Option<u64>,
    /// 1-based column of the YAML node at fault (with `line`), as promtool reports it.
    pub column: Option<u64>,
    pub group: Option<String>,
    /// 1-based index of the rule in its group, and its name.
    pub rule: Option<(usize, String)>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ":")?;
        match (&self.group, &self.rule) {
            (Some(g), Some((i, name))) => write!(f, " group {g:?}, rule {i}, {name:?}:")?,
            (Some(g), None) => write!(f, " group {g:?}:")?,
            (None, _) => {}
        }
        write!(f, " {}", self.message)
    }
}

/// What a rule needs beyond syntax, supplied by the caller (the evaluator's support check and
/// the template checker), so this module stays independent of both.
pub struct Checks<'a> {
    pub expr: &'a dyn Fn(&promql_parser::parser::Expr) -> Result<(), String>,
    pub template: &'a dyn Fn(&str) -> Result<(), String>,
}

/// A YAML node's (line, column), both 1-based.
type Pos = (u64, u64);

fn pos(l: &serde_saphyr::Location) -> Pos {
    (l.line(), l.column())
}

/// Parses and validates one rule file's text, returning every problem found.
pub fn parse(text: &str, file: &str, checks: &Checks<'_>) -> Result<Vec<Group>, Vec<RuleError>> {
    let def: RuleFileDef = match serde_saphyr::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            // Without the parser's wording (`DuplicateKeyPolicy`, `invalid u64`, `<input>`).
            let e = crate::yaml::describe(&e, text, file, None);
            let line = e.position.map(|(line, _)| line);
            let column = e.position.map(|(_, column)| column);
            let message = match e.key {
                Some(key) => format!("{key}: {}", e.message),
                None => e.message,
            };
            return Err(vec![RuleError { file: file.into(), line, column, group: None, rule: None, message }]);
        }
    };
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for g in def.groups {
        let name = g.name.value.clone();
        let err = |(line, column): Pos, rule: Option<(usize, String)>, message: String| RuleError {
            file: file.into(),
            line: Some(line),
            column: Some(column),
            group: Some(name.clone()),
            rule,
            message,
        };
        if name.trim().is_empty() {
            errors.push(err(pos(&g.name.referenced), None, "group name must not be empty".into()));
        }
        if !seen.insert(name.clone()) {
            errors.push(err(
                pos(&g.name.referenced),
                None,
                format!("groupname: {name:?} is repeated in the same file"),
            ));
        }
        let interval = match &g.interval {
            Some(i) => match parse_duration(&i.value) {
                Ok(d) if d.is_zero() => {
                    errors.push(err(pos(&i.referenced), None, "interval: must be greater than 0".into()));
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(err(pos(&i.referenced), None, format!("interval: {e}")));
                    None
                }
            },
            None => None,
        };
        let mut rules = Vec::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            let line = pos(&r.referenced);
            let r = r.value;
            let display_name = r.alert.as_ref().or(r.record.as_ref()).map(|n| n.value.clone()).unwrap_or_default();
            let at = |line: Pos, message: String| err(line, Some((i + 1, display_name.clone())), message);
            let (kind, name) = match (&r.alert, &r.record) {
                (Some(a), None) => (RuleKind::Alerting, a),
                (None, Some(rec)) => (RuleKind::Recording, rec),
                (Some(_), Some(_)) => {
                    errors.push(at(line, "only one of 'record' and 'alert' must be set".into()));
                    continue;
                }
                (None, None) => {
                    errors.push(at(line, "one of 'record' or 'alert' must be set".into()));
                    continue;
                }
            };
            let mut ok = true;
            let mut fail = |line: Pos, m: String| {
                errors.push(at(line, m));
                ok = false;
            };
            match kind {
                RuleKind::Recording => {
                    if !is_metric_name(&name.value) {
                        fail(pos(&name.referenced), format!("invalid recording rule name: {}", name.value));
                    }
                    if r.for_.is_some() {
                        fail(pos(&name.referenced), "invalid field 'for' in recording rule".into());
                    }
                    if r.keep_firing_for.is_some() {
                        fail(pos(&name.referenced), "invalid field 'keep_firing_for' in recording rule".into());
                    }
                    if !r.annotations.is_empty() {
                        fail(pos(&name.referenced), "invalid field 'annotations' in recording rule".into());
                    }
                }
                RuleKind::Alerting => {
                    if name.value.trim().is_empty() {
                        fail(pos(&name.referenced), "alert name must not be empty".into());
                    }
                    for (k, v) in &r.annotations {
                        if !is_label_name(k) {
                            fail(line, format!("invalid annotation name: {k}"));
                        }
                        if let Err(e) = (checks.template)(v) {
                            fail(line, format!("annotation {k:?}: {}", super::template::named_error(&e, &name.value)));
                        }
                    }
                }
            }
            for (k, v) in &r.labels {
                if !is_label_name(k) || k == "__name__" {
                    fail(line, format!("invalid label name: {k}"));
                }
                if kind == RuleKind::Alerting
                    && let Err(e) = (checks.template)(v)
                {
                    fail(line, format!("label {k:?}: {}", super::template::named_error(&e, &name.value)));
                }
            }
            let duration_of = |d: &Option<Spanned<String>>, key: &str, fail: &mut dyn FnMut(Pos, String)| match d {
                Some(s) => parse_duration(&s.value).unwrap_or_else(|e| {
                    fail(pos(&s.referenced), format!("{key}: {e}"));
                    Duration::ZERO
                }),
                None => Duration::ZERO,
            };
            let for_ = duration_of(&r.for_, "for", &mut fail);
            let keep_firing_for = duration_of(&r.keep_firing_for, "keep_firing_for", &mut fail);
            let expr_line = pos(&r.expr.referenced);
            let expr_text = r.expr.value.0.clone();
            let expr = if expr_text.trim().is_empty() {
                fail(expr_line, "field 'expr' must be set in rule".into());
                None
            } else {
                match super::promql::parse_syntax(&expr_text) {
                    Ok(e) => match (checks.expr)(&e) {
                        Ok(()) => Some(e),
                        Err(m) => {
                            fail(expr_line, m);
                            None
                        }
                    },
                    Err(m) => {
                        fail(expr_line, format!("could not parse expression: {}", m.trim()));
                        None
                    }
                }
            };
            if let (true, Some(expr)) = (ok, expr) {
                rules.push(Rule {
                    kind,
                    name: name.value.clone(),
                    expr_text,
                    expr,
                    for_,
                    keep_firing_for,
                    labels: r.labels,
                    annotations: r.annotations,
                    line: line.0,
                });
            }
        }
        groups.push(Group { name, file: file.into(), interval, limit: g.limit.unwrap_or(0), rules });
    }
    if errors.is_empty() { Ok(groups) } else { Err(errors) }
}

/// Reads and validates a rule file from disk.
pub fn load(path: &Path, checks: &Checks<'_>) -> Result<Vec<Group>, Vec<RuleError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![RuleError {
            file: file.clone(),
            line: None,
            column: None,
            group: None,
            rule: None,
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse(&text, &file, checks)
}

/// A Prometheus duration (`30s`, `5m`, `1h30m`, `1d`, `1w`, `1y`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    // Prometheus accepts zero durations (`0`, `0s`, `0m`); the parser crate refuses them.
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let digits = t.chars().filter(char::is_ascii_digit);
    if digits.clone().count() > 0 && digits.clone().all(|c| c == '0') {
        let as_ones: String = t.chars().map(|c| if c == '0' { '1' } else { c }).collect();
        if promql_parser::util::parse_duration(&as_ones).is_ok() {
            return Ok(Duration::ZERO);
        }
    }
    promql_parser::util::parse_duration(t).map_err(|e| format!("not a valid duration string: {s:?} ({e})"))
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> Checks<'static> {
        Checks {
            expr: &|e| {
                if e.to_string().contains("predict_linear") {
                    Err("function `predict_linear` is not supported".into())
                } else {
                    Ok(())
                }
            },
            template: &|t| if t.contains("{{ bad") { Err("unexpected bad".into()) } else { Ok(()) },
        }
    }

    const GOOD: &str = r#"groups:
  - name: example
    interval: 30s
    rules:
      - record: job:errors:rate5m
        expr: sum(rate(errors_total[5m]))
      - alert: HighErrors
        expr: job:errors:rate5m > 1
        for: 5m
        keep_firing_for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $value }} errors"}
      - record: one
        expr: 1
"#;

    #[test]
    fn a_good_file_loads() {
        let groups = parse(GOOD, "good.yml", &checks()).expect("valid file");
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.interval, Some(Duration::from_secs(30)));
        assert_eq!(g.rules.len(), 3);
        assert_eq!(g.rules[1].kind, RuleKind::Alerting);
        assert_eq!(g.rules[1].for_, Duration::from_secs(300));
        assert_eq!(g.rules[1].keep_firing_for, Duration::from_secs(60));
        assert_eq!(g.rules[1].line, 7);
        assert_eq!(g.rules[2].expr_text, "1");
    }

    #[test]
    fn every_problem_is_reported_with_file_line_group_and_rule() {
        let bad = r#"groups:
  - name: g
    rules:
      - alert: BadExpr
        expr: sum(rate(x[5m])
      - alert: Unknown
        expr: predict_linear(x[5m], 60) > 0
      - alert: BadTemplate
        expr: up == 0
        annotations: {summary: "{{ bad"}
      - record: bad name
        expr: up
      - record: r
        expr: up
        for: 5m
  - name: g
    rules: []
"#;
        let errors = parse(bad, "bad.yml", &checks()).expect_err("invalid file");
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 6, "{text:#?}");
        assert!(
            text[0].starts_with("bad.yml:5:15: group \"g\", rule 1, \"BadExpr\": could not parse expression"),
            "{}",
            text[0]
        );
        assert!(
            text[1].starts_with("bad.yml:7:15: group \"g\", rule 2, \"Unknown\": function `predict_linear`"),
            "{}",
            text[1]
        );
        assert!(
            text[2].starts_with(
                "bad.yml:8:9: group \"g\", rule 3, \"BadTemplate\": annotation \"summary\": unexpected bad"
            ),
            "{}",
            text[2]
        );
        assert!(text[3].contains("rule 4, \"bad name\": invalid recording rule name"), "{}", text[3]);
        // As promtool: at the rule's name, not at `for:`.
        assert!(text[4].starts_with("bad.yml:13:17: group \"g\", rule 5, \"r\": invalid field 'for'"), "{}", text[4]);
        assert!(text[5].starts_with("bad.yml:16:11: group \"g\": groupname: \"g\" is repeated"), "{}", text[5]);
    }

    #[test]
    fn zero_durations_are_accepted_like_prometheus() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0x").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn bad_yaml_names_the_file_and_line() {
        let errors = parse("groups:\n  - name: g\n    rules: [\n", "broken.yml", &checks()).expect_err("bad YAML");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, "broken.yml");
        assert!(errors[0].line.is_some(), "{:?}", errors[0]);
        let errors = parse("groups:\n  - name: g\n    rulez: []\n", "typo.yml", &checks()).expect_err("unknown key");
        assert!(errors[0].message.contains("rulez"), "{:?}", errors[0]);
        let errors = parse("groups:\n  - name: a\n    name: b\n", "dup.yml", &checks()).expect_err("duplicate key");
        assert_eq!((errors[0].line, errors[0].message.as_str()), (Some(3), "duplicate key `name`"));
    }
}
