//! Alert label and annotation templates: Go text/template (via gtmpl-ng) with Prometheus's
//! data (`$labels`, `$value`, `$externalLabels`, `$externalURL`) and template functions.

use std::collections::BTreeMap;

use gtmpl_ng::{Context, FloatFormat, Func, FuncError, Number, NumberKind, ParseError, Template, Value, format_float};

/// Prometheus prepends these definitions so templates can use the `$` shorthands.
const PRELUDE: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// What a template sees for one alert.
pub struct TemplateData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
}

fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("humanize", humanize as Func),
        ("humanize1024", humanize1024),
        ("humanizeDuration", humanize_duration),
        ("humanizePercentage", humanize_percentage),
        ("humanizeTimestamp", humanize_timestamp),
        ("toUpper", to_upper),
        ("toLower", to_lower),
        ("title", title),
        ("match", regex_match),
        ("reReplaceAll", re_replace_all),
        // Optional in the compliance spec: accepted, and empty.
        ("graphLink", empty),
        ("tableLink", empty),
        ("pathPrefix", empty),
        ("safeHtml", identity),
        ("strvalue", empty),
    ]
}

fn template_for(text: &str) -> Result<Template, String> {
    let mut t = Template::default();
    t.add_funcs(&functions());
    t.parse(format!("{PRELUDE}{text}")).map_err(|e| go_parse_error(&e))?;
    Ok(t)
}

/// Go's text/template wording of a parse error, `template: <name>:<line>: <message>`, the
/// template left unnamed (rule files name it `__alert_<alertname>`, see [`named_error`]). The
/// line counts in the text as written: the prelude adds none.
fn go_parse_error(e: &ParseError) -> String {
    match e {
        ParseError::WithContext(ctx, msg) => format!("template: :{}: {msg}", ctx.line),
        other => format!("template: : {other}"),
    }
}

/// A [`check`] error with the template named as Prometheus names an alert's templates.
pub fn named_error(error: &str, alertname: &str) -> String {
    match error.strip_prefix("template: :") {
        Some(rest) => format!("template: __alert_{alertname}:{rest}"),
        None => error.to_string(),
    }
}

/// Checks that a template parses (rule load time).
pub fn check(text: &str) -> Result<(), String> {
    template_for(text).map(|_| ())
}

/// Expands a template for one alert; an error carries the template's complaint.
pub fn expand(text: &str, data: &TemplateData<'_>) -> Result<String, String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let t = template_for(text)?;
    let map = |m: &BTreeMap<String, String>| {
        Value::Map(m.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect())
    };
    let mut root = std::collections::HashMap::new();
    root.insert("Labels".to_string(), map(data.labels));
    root.insert("ExternalLabels".to_string(), map(data.external_labels));
    root.insert("ExternalURL".to_string(), Value::from(data.external_url));
    // A float must stay a float (`1.234567e+06` as Go prints it), even when it is whole.
    root.insert("Value".to_string(), Value::Number(Number::float(data.value)));
    let out = t.render(&Context::from(Value::Map(root))).map_err(|e| e.to_string())?;
    // Prometheus hands templates map[string]string, where a missing key is the empty string;
    // gtmpl's untyped maps print Go's `<no value>` instead, which Prometheus never shows.
    Ok(out.replace("<no value>", ""))
}

fn float_arg(args: &[Value]) -> Result<f64, FuncError> {
    match args.first() {
        Some(Value::Number(n)) => match n.kind() {
            NumberKind::Float(f) => Ok(f),
            NumberKind::Signed(i) => Ok(i as f64),
            NumberKind::Unsigned(u) => Ok(u as f64),
        },
        Some(Value::String(s)) => {
            s.trim().parse::<f64>().map_err(|_| FuncError::Generic(format!("cannot convert {s:?} to a number")))
        }
        _ => Err(FuncError::Generic("expected one number argument".into())),
    }
}

fn string_arg(args: &[Value], i: usize) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(FuncError::Generic(format!("missing argument {}", i + 1))),
    }
}

/// Go's `%.4g`.
fn g4(v: f64) -> String {
    format_float(v, FloatFormat::General, Some(4))
}

fn scaled(mut v: f64, base: f64, up: &[&str], down: &[&str]) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in up {
            if v.abs() < base {
                break;
            }
            prefix = p;
            v /= base;
        }
    } else {
        for p in down {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= base;
        }
    }
    format!("{}{prefix}", g4(v))
}

const SMALL: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

fn humanize(args: &[Value]) -> Result<Value, FuncError> {
    let v = float_arg(args)?;
    Ok(Value::from(scaled(v, 1000.0, &["k", "M", "G", "T", "P", "E", "Z", "Y"], &SMALL)))
}

fn humanize1024(args: &[Value]) -> Result<Value, FuncError> {
    let v = float_arg(args)?;
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return Ok(Value::from(g4(v)));
    }
    Ok(Value::from(scaled(v, 1024.0, &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"], &[])))
}

fn humanize_duration(args: &[Value]) -> Result<Value, FuncError> {
    let mut v = float_arg(args)?;
    if v.is_nan() || v.is_infinite() {
        return Ok(Value::from(g4(v)));
    }
    if v == 0.0 {
        return Ok(Value::from(format!("{}s", g4(v))));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let total = v as i64;
        let (seconds, minutes, hours, days) = (total % 60, (total / 60) % 60, (total / 3600) % 24, total / 86400);
        let text = if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", g4(v))
        };
        return Ok(Value::from(text));
    }
    Ok(Value::from(format!("{}s", scaled(v, 1000.0, &[], &SMALL))))
}

fn humanize_percentage(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(format!("{}%", g4(float_arg(args)? * 100.0))))
}

fn humanize_timestamp(args: &[Value]) -> Result<Value, FuncError> {
    let v = float_arg(args)?;
    if v.is_nan() || v.is_infinite() {
        return Ok(Value::from(g4(v)));
    }
    let nanos = (v * 1e9) as i128;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map_err(|e| FuncError::Generic(format!("timestamp out of range: {e}")))?;
    // Go's time.Time String(): fractional seconds without trailing zeros, then the zone.
    let mut text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let frac = t.nanosecond();
    if frac != 0 {
        let digits = format!("{frac:09}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    Ok(Value::from(text))
}

fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(string_arg(args, 0)?.to_uppercase()))
}

fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(string_arg(args, 0)?.to_lowercase()))
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(args, 0)?;
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if at_word_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_word_start = !c.is_alphanumeric();
    }
    Ok(Value::from(out))
}

fn regex_match(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex::Regex::new(&string_arg(args, 0)?).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Value::from(re.is_match(&string_arg(args, 1)?)))
}

fn re_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex::Regex::new(&string_arg(args, 0)?).map_err(|e| FuncError::Generic(e.to_string()))?;
    let replacement = string_arg(args, 1)?;
    Ok(Value::from(re.replace_all(&string_arg(args, 2)?, replacement.as_str()).into_owned()))
}

fn empty(_args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(""))
}

fn identity(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args.first().cloned().unwrap_or_else(|| Value::from("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, value: f64) -> String {
        let labels: BTreeMap<String, String> =
            [("instance".to_string(), "web-1".to_string()), ("job".to_string(), "api".to_string())]
                .into_iter()
                .collect();
        let external: BTreeMap<String, String> =
            [("service".to_string(), "checkout".to_string())].into_iter().collect();
        let data = TemplateData { labels: &labels, external_labels: &external, external_url: "http://redline", value };
        expand(text, &data).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn prometheus_variables_and_value_printing() {
        assert_eq!(render("{{ $labels.instance }} of {{ $labels.job }}", 1.0), "web-1 of api");
        assert_eq!(render("{{ $externalLabels.service }} {{ $externalURL }}", 1.0), "checkout http://redline");
        assert_eq!(render("{{ $value }}", 1234567.0), "1.234567e+06", "Go's %v");
        assert_eq!(render("{{ $value }}", 0.5), "0.5");
        assert_eq!(render("{{ $labels.missing }}", 0.5), "", "a missing label is empty");
        assert_eq!(render("{{ printf \"%.2f\" $value }}", 0.12345), "0.12");
    }

    #[test]
    fn humanize_functions_match_prometheus() {
        assert_eq!(render("{{ humanize $value }}", 1234567.0), "1.235M");
        assert_eq!(render("{{ humanize $value }}", 0.0012), "1.2m");
        assert_eq!(render("{{ humanize $value }}", 0.0), "0");
        assert_eq!(render("{{ humanize1024 $value }}", 1024.0), "1ki");
        assert_eq!(render("{{ $value | humanizePercentage }}", 0.0512), "5.12%");
        assert_eq!(render("{{ humanizePercentage $value }}", 1000.0), "1e+05%");
        assert_eq!(render("{{ humanizeDuration $value }}", 90.0), "1m 30s");
        assert_eq!(render("{{ humanizeDuration $value }}", 180000.0), "2d 2h 0m 0s");
        assert_eq!(render("{{ humanizeDuration $value }}", 1.5), "1.5s");
        assert_eq!(render("{{ humanizeDuration $value }}", 0.25), "250ms");
        assert_eq!(render("{{ humanizeDuration $value }}", 0.0), "0s");
        assert_eq!(render("{{ humanizeTimestamp $value }}", 1700000000.5), "2023-11-14 22:13:20.5 +0000 UTC");
    }

    #[test]
    fn string_functions_and_checks() {
        assert_eq!(render("{{ toUpper $labels.job }} {{ title \"hello world\" }}", 0.0), "API Hello World");
        assert_eq!(render("{{ reReplaceAll \"-(.*)\" \"_$1\" $labels.instance }}", 0.0), "web_1");
        assert_eq!(render("{{ if match \"^web\" $labels.instance }}yes{{ end }}", 0.0), "yes");
        assert!(check("{{ $labels.instance }").is_err());
        // Go's wording, the line counted in the template as written (the prelude adds none),
        // named as promtool names an alert's template.
        let e = check("line one\n{{ $labels.instance").unwrap_err();
        assert_eq!(named_error(&e, "Down"), "template: __alert_Down:2: unclosed action");
        assert!(check("{{ nosuchfunction $value }}").is_err());
        assert!(check("{{ graphLink \"up\" }}").is_ok(), "optional functions are accepted");
    }
}
