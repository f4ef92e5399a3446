//! Label-set helpers with Prometheus's `labels.Builder` semantics (sorted names, empty value =
//! absent) and its `Labels.String()` formatting used in error messages.

use super::{Labels, METRIC_NAME};

/// Builds a sorted label set from pairs; a later duplicate name wins and empty values are dropped,
/// as `labels.Builder` does.
pub fn labels_from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Labels {
    let mut out = Labels::new();
    for (k, v) in pairs {
        set(&mut out, &k.into(), &v.into());
    }
    out
}

/// The value of label `name`, or None when the series does not have it.
pub fn label_value<'a>(labels: &'a Labels, name: &str) -> Option<&'a str> {
    labels.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok().map(|i| labels[i].1.as_str())
}

/// The value of label `name`, "" when absent (how PromQL matches and groups missing labels).
pub(crate) fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    label_value(labels, name).unwrap_or("")
}

/// Sets `name` to `value`, removing the label when the value is empty.
pub(crate) fn set(labels: &mut Labels, name: &str, value: &str) {
    match labels.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => labels[i].1 = value.to_string(),
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, (name.to_string(), value.to_string())),
    }
}

/// Removes every label whose name is in `names`.
pub(crate) fn del(labels: &mut Labels, names: &[String]) {
    labels.retain(|(k, _)| !names.iter().any(|n| n == k));
}

/// Keeps only the labels whose name is in `names`.
pub(crate) fn keep(labels: &Labels, names: &[String]) -> Labels {
    labels.iter().filter(|(k, _)| names.iter().any(|n| n == k)).cloned().collect()
}

/// The label set without `__name__`.
pub(crate) fn drop_name(labels: &Labels) -> Labels {
    labels.iter().filter(|(k, _)| k != METRIC_NAME).cloned().collect()
}

/// Formats like Go's `labels.Labels.String()`: `{__name__="up", job="api"}`.
pub fn format_labels(labels: &Labels) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&go_quote(v));
    }
    out.push('}');
    out
}

/// Go's `strconv.Quote` for the characters label values realistically contain.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True when two samples of a vector would have the same label set, which Prometheus rejects.
pub(crate) fn has_duplicates<'a>(sets: impl Iterator<Item = &'a Labels>) -> bool {
    let mut seen = foldhash::HashSet::default();
    for l in sets {
        if !seen.insert(l) {
            return true;
        }
    }
    false
}

/// Checks Prometheus's label name syntax (`model.LabelName.IsValid`).
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_sorted_and_empty_deletes() {
        let mut l = labels_from_pairs([("job", "a"), ("__name__", "up"), ("Z", "1")]);
        assert_eq!(l.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["Z", "__name__", "job"]);
        set(&mut l, "job", "");
        set(&mut l, "inst", "x");
        assert_eq!(format_labels(&l), r#"{Z="1", __name__="up", inst="x"}"#);
        assert_eq!(get(&l, "missing"), "");
    }

    #[test]
    fn quoting_matches_go() {
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
    }
}
