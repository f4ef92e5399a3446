//! Building blocks of Grafana's dashboard JSON model (schema 39): panels laid out on the
//! 24-column grid, Prometheus targets, template variables, and Grafana's variable interpolation.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

/// The dashboard JSON schema of Grafana 10.4 / 11; newer Grafana migrates it on load.
pub const SCHEMA_VERSION: u64 = 39;

/// Every panel, target and query variable reads the Prometheus picked in `$datasource`.
pub fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// One PromQL query of a panel.
#[derive(Debug, Clone)]
pub struct Target {
    expr: String,
    legend: String,
    exemplar: bool,
    instant: bool,
    heatmap: bool,
}

pub fn target(expr: impl Into<String>, legend: &str) -> Target {
    Target { expr: expr.into(), legend: legend.to_string(), exemplar: false, instant: false, heatmap: false }
}

impl Target {
    /// Asks Prometheus for the exemplars of the series (trace ids: Grafana links them to Jaeger).
    pub fn exemplar(mut self) -> Target {
        self.exemplar = true;
        self
    }

    /// An instant query (stat and table panels) instead of a range query.
    pub fn instant(mut self) -> Target {
        self.instant = true;
        self
    }

    /// Histogram buckets for a heatmap panel (`le` becomes the y axis).
    pub fn heatmap(mut self) -> Target {
        self.heatmap = true;
        self
    }

    fn model(&self, ref_id: char) -> Value {
        let format = if self.heatmap {
            "heatmap"
        } else if self.instant && self.legend.is_empty() {
            "table"
        } else {
            "time_series"
        };
        json!({
            "datasource": datasource(),
            "editorMode": "code",
            "exemplar": self.exemplar,
            "expr": self.expr,
            "format": format,
            "instant": self.instant,
            "legendFormat": if self.legend.is_empty() { "__auto" } else { &self.legend },
            "range": !self.instant,
            "refId": ref_id.to_string(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Timeseries,
    Stat,
    Table,
    Heatmap,
}

/// One visualisation; `width` is in grid columns (of 24), `height` in grid rows (30 px).
#[derive(Debug, Clone)]
pub struct Panel {
    kind: Kind,
    title: String,
    description: String,
    unit: &'static str,
    width: u32,
    height: u32,
    targets: Vec<Target>,
    /// Coloured steps above the base colour: `(value, colour)`, ascending.
    steps: Vec<(f64, &'static str)>,
    base_colour: &'static str,
    min: Option<f64>,
}

impl Panel {
    pub fn new(kind: Kind, title: &str, unit: &'static str) -> Panel {
        let (width, height) = match kind {
            Kind::Stat => (6, 4),
            _ => (8, 8),
        };
        Panel {
            kind,
            title: title.to_string(),
            description: String::new(),
            unit,
            width,
            height,
            targets: Vec::new(),
            steps: Vec::new(),
            base_colour: "green",
            min: None,
        }
    }

    pub fn timeseries(title: &str, unit: &'static str) -> Panel {
        Panel::new(Kind::Timeseries, title, unit).min(0.0)
    }

    pub fn describe(mut self, text: &str) -> Panel {
        self.description = text.to_string();
        self
    }

    pub fn width(mut self, columns: u32) -> Panel {
        self.width = columns;
        self
    }

    pub fn target(mut self, t: Target) -> Panel {
        self.targets.push(t);
        self
    }

    /// Threshold steps (drawn as dashed lines on time series); `base` colours values below the first.
    pub fn thresholds(mut self, base: &'static str, steps: &[(f64, &'static str)]) -> Panel {
        self.base_colour = base;
        self.steps = steps.to_vec();
        self
    }

    pub fn min(mut self, min: f64) -> Panel {
        self.min = Some(min);
        self
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    fn model(&self, id: u32, x: u32, y: u32) -> Value {
        let mut steps = vec![json!({"color": self.base_colour, "value": null})];
        steps.extend(self.steps.iter().map(|(v, c)| json!({"color": c, "value": v})));
        let mut defaults = json!({
            "color": {"mode": if self.kind == Kind::Timeseries { "palette-classic" } else { "thresholds" }},
            "thresholds": {"mode": "absolute", "steps": steps},
            "unit": self.unit,
        });
        if let Some(min) = self.min {
            defaults["min"] = json!(min);
        }
        let (kind, options) = match self.kind {
            Kind::Timeseries => {
                defaults["custom"] = json!({
                    "drawStyle": "line",
                    "fillOpacity": 10,
                    "lineWidth": 1,
                    "showPoints": "never",
                    "spanNulls": false,
                    "thresholdsStyle": {"mode": if self.steps.is_empty() { "off" } else { "dashed" }},
                });
                let options = json!({
                    "legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "bottom", "showLegend": true},
                    "tooltip": {"mode": "multi", "sort": "desc"},
                });
                ("timeseries", options)
            }
            Kind::Stat => {
                let options = json!({
                    "colorMode": "value",
                    "graphMode": "none",
                    "justifyMode": "auto",
                    "orientation": "auto",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
                    "textMode": "auto",
                });
                ("stat", options)
            }
            Kind::Table => {
                let options = json!({"cellHeight": "sm", "showHeader": true, "footer": {"show": false}});
                ("table", options)
            }
            Kind::Heatmap => {
                let options = json!({
                    "calculate": false,
                    "cellGap": 1,
                    "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                    "legend": {"show": true},
                    "tooltip": {"show": true, "yHistogram": true},
                    "yAxis": {"axisPlacement": "left", "unit": self.unit},
                    "rowsFrame": {"layout": "auto"},
                    "exemplars": {"color": "rgba(255,0,255,0.7)"},
                });
                ("heatmap", options)
            }
        };
        let targets: Vec<Value> = self.targets.iter().zip('A'..='Z').map(|(t, ref_id)| t.model(ref_id)).collect();
        let mut panel = json!({
            "datasource": datasource(),
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": id,
            "options": options,
            "targets": targets,
            "title": self.title,
            "type": kind,
        });
        if self.kind == Kind::Table {
            panel["transformations"] = json!([
                {"id": "organize", "options": {"excludeByName": {"Time": true, "Value": true, "__name__": true}}}
            ]);
        }
        panel
    }
}

/// What a dashboard shows, top to bottom: rows and the panels under them.
#[derive(Debug, Clone)]
pub enum Item {
    Row(&'static str),
    /// A row shown collapsed: the panels up to the next row are inside it (Grafana's row
    /// `panels`) and appear when the row is expanded. For panels that only some services have
    /// data for (gRPC).
    CollapsedRow(&'static str),
    Panel(Panel),
}

/// Assigns ids (1, 2, … in order) and grid positions: panels fill a line left to right and
/// wrap at 24 columns; a row starts a new line. A collapsed row takes one line: its panels
/// get the positions they have once it is expanded (from the line under it), and the next
/// row follows right under it.
pub fn layout(items: &[Item]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let (mut x, mut y, mut line_height) = (0u32, 0u32, 0u32);
    // The collapsed row the panels go into: its index in `out` and its line.
    let mut collapsed: Option<(usize, u32)> = None;
    for (id, item) in (1u32..).zip(items) {
        match item {
            Item::Row(title) | Item::CollapsedRow(title) => {
                y = match collapsed.take() {
                    Some((_, row_y)) => row_y + 1,
                    None => y + line_height,
                };
                let folded = matches!(item, Item::CollapsedRow(_));
                out.push(json!({
                    "collapsed": folded,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "id": id,
                    "panels": [],
                    "title": title,
                    "type": "row",
                }));
                if folded {
                    collapsed = Some((out.len() - 1, y));
                }
                (x, y, line_height) = (0, y + 1, 0);
            }
            Item::Panel(p) => {
                if x + p.width > 24 {
                    (x, y, line_height) = (0, y + line_height, 0);
                }
                let model = p.model(id, x, y);
                match collapsed {
                    Some((row, _)) => {
                        if let Some(children) = out[row]["panels"].as_array_mut() {
                            children.push(model);
                        }
                    }
                    None => out.push(model),
                }
                x += p.width;
                line_height = line_height.max(p.height);
            }
        }
    }
    out
}

/// The `$datasource` variable: any Prometheus data source of the Grafana instance.
pub fn datasource_variable() -> Value {
    json!({
        "current": {},
        "hide": 0,
        "includeAll": false,
        "label": "Data source",
        "multi": false,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": false,
        "type": "datasource",
    })
}

/// A variable filled from Prometheus with `query` (`label_values(...)`), refreshed when the
/// time range changes. `all`: several values may be picked, and "All" matches any (`.*`),
/// which also matches series without the label.
pub fn query_variable(name: &str, label: &str, query: &str, all: bool) -> Value {
    let mut v = json!({
        "current": {},
        "datasource": datasource(),
        "definition": query,
        "hide": 0,
        "includeAll": all,
        "label": label,
        "multi": all,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": false,
        "sort": 1,
        "type": "query",
    });
    if all {
        v["allValue"] = json!(".*");
        v["current"] = json!({"selected": true, "text": ["All"], "value": ["$__all"]});
    }
    v
}

/// A free-text variable with a default, e.g. an SLO target.
pub fn textbox_variable(name: &str, label: &str, default: &str) -> Value {
    json!({
        "current": {"selected": false, "text": default, "value": default},
        "hide": 0,
        "label": label,
        "name": name,
        "options": [{"selected": true, "text": default, "value": default}],
        "query": default,
        "skipUrlSync": false,
        "type": "textbox",
    })
}

/// The annotation every dashboard has (Grafana's own annotations and alerts).
pub fn builtin_annotation() -> Value {
    json!({
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": true,
        "hide": true,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    })
}

/// Marks on every time series panel while a query returns series (e.g. firing alerts).
pub fn prometheus_annotation(name: &str, expr: &str, title: &str, colour: &str) -> Value {
    json!({
        "datasource": datasource(),
        "enable": true,
        "expr": expr,
        "iconColor": colour,
        "name": name,
        "step": "1m",
        "tagKeys": "severity,alertstate",
        "textFormat": "",
        "titleFormat": title,
        "useValueForTime": false,
    })
}

/// What identifies a dashboard and what it holds.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub uid: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub tags: Vec<&'static str>,
    pub variables: Vec<Value>,
    pub annotations: Vec<Value>,
    pub items: Vec<Item>,
}

impl Dashboard {
    /// The JSON model as Grafana exports it for sharing (no numeric `id`, so it imports anywhere).
    pub fn model(&self) -> Value {
        let mut annotations = vec![builtin_annotation()];
        annotations.extend(self.annotations.iter().cloned());
        json!({
            "annotations": {"list": annotations},
            "description": self.description,
            "editable": true,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": null,
            "links": [{
                "asDropdown": false,
                "icon": "external link",
                "includeVars": true,
                "keepTime": true,
                "tags": ["redline"],
                "targetBlank": false,
                "title": "redline dashboards",
                "type": "dashboards",
            }],
            "panels": layout(&self.items),
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "tags": self.tags,
            "templating": {"list": self.variables},
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "timezone": "",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        })
    }
}

/// A variable's value as Grafana puts it into a query.
#[derive(Debug, Clone)]
pub enum VarValue {
    /// A variable without multi-select or "All": the value, with `\` and `'` escaped.
    Single(String),
    /// The picked values of a multi-select / "All" variable: regex-escaped, `(a|b)` for several.
    Picked(Vec<String>),
    /// Put in as is (the `allValue` when "All" is picked, or a built-in such as `$__rate_interval`).
    Raw(String),
}

impl VarValue {
    fn render(&self) -> String {
        match self {
            VarValue::Single(v) => v.replace('\\', "\\\\").replace('\'', "\\\\'"),
            VarValue::Picked(values) => {
                let escaped: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
                match escaped.as_slice() {
                    [one] => one.clone(),
                    many => format!("({})", many.join("|")),
                }
            }
            VarValue::Raw(v) => v.clone(),
        }
    }
}

/// Grafana's `prometheusSpecialRegexEscape`: regex metacharacters get a backslash that
/// survives PromQL's string unescaping (so `\\{` in the query text).
fn regex_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

static VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]")
        .expect("valid regex")
});

/// Fills the variables of `expr` as Grafana's Prometheus data source does (`$name`,
/// `${name}`, `[[name]]`); built-ins such as `__rate_interval` are passed like any other.
/// Unknown variables are left in place.
pub fn interpolate(expr: &str, vars: &[(&str, VarValue)]) -> String {
    VARIABLE
        .replace_all(expr, |c: &regex::Captures<'_>| {
            let name = c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)).map_or("", |m| m.as_str());
            match vars.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => v.render(),
                None => c[0].to_string(),
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(width: u32) -> Item {
        Item::Panel(Panel::timeseries("p", "short").width(width).target(target("up", "")))
    }

    #[test]
    fn layout_wraps_at_24_columns_and_rows_start_a_new_line() {
        let panels = layout(&[Item::Row("a"), panel(12), panel(8), panel(8), Item::Row("b"), panel(24)]);
        let pos: Vec<(u64, u64, u64)> = panels
            .iter()
            .map(|p| {
                let g = &p["gridPos"];
                (g["x"].as_u64().unwrap_or(99), g["y"].as_u64().unwrap_or(99), p["id"].as_u64().unwrap_or(0))
            })
            .collect();
        assert_eq!(pos, vec![(0, 0, 1), (0, 1, 2), (12, 1, 3), (0, 9, 4), (0, 17, 5), (0, 18, 6)]);
    }

    #[test]
    fn a_collapsed_row_holds_its_panels_and_takes_one_line() {
        let panels = layout(&[
            Item::Row("a"),
            panel(24),
            Item::CollapsedRow("b"),
            panel(12),
            panel(12),
            panel(12),
            Item::Row("c"),
            panel(24),
        ]);
        let pos = |p: &Value| {
            let g = &p["gridPos"];
            (g["x"].as_u64().unwrap_or(99), g["y"].as_u64().unwrap_or(99), p["id"].as_u64().unwrap_or(0))
        };
        let top: Vec<(u64, u64, u64)> = panels.iter().map(pos).collect();
        // a at 0, its panel 1-8, b (collapsed) at 9, c right under it at 10, c's panel at 11.
        assert_eq!(top, vec![(0, 0, 1), (0, 1, 2), (0, 9, 3), (0, 10, 7), (0, 11, 8)]);
        assert_eq!((panels[0]["collapsed"].as_bool(), panels[2]["collapsed"].as_bool()), (Some(false), Some(true)));
        let inside: Vec<(u64, u64, u64)> = panels[2]["panels"].as_array().into_iter().flatten().map(pos).collect();
        assert_eq!(inside, vec![(0, 10, 4), (12, 10, 5), (0, 18, 6)]);
        assert_eq!(panels[0]["panels"], json!([]));
    }

    #[test]
    fn targets_get_ref_ids_and_exemplars_only_where_asked() {
        let p = Panel::timeseries("Duration", "s").target(target("a", "p50")).target(target("b", "p99").exemplar());
        let v = layout(&[Item::Panel(p)]);
        let t = &v[0]["targets"];
        assert_eq!((t[0]["refId"].as_str(), t[1]["refId"].as_str()), (Some("A"), Some("B")));
        assert_eq!((t[0]["exemplar"].as_bool(), t[1]["exemplar"].as_bool()), (Some(false), Some(true)));
        assert_eq!(t[1]["datasource"]["uid"], "${datasource}");
    }

    #[test]
    fn interpolation_escapes_like_grafana() {
        let vars = [
            ("service", VarValue::Single("check'out".into())),
            ("route", VarValue::Picked(vec!["/users/{id}".into()])),
            ("version", VarValue::Picked(vec!["1.2.3".into(), "2.0".into()])),
            ("namespace", VarValue::Raw(".*".into())),
            ("__rate_interval", VarValue::Raw("1m".into())),
        ];
        let e = interpolate(
            r#"x{service="$service",http_route=~"${route}",version=~"[[version]]",namespace=~"$namespace"}[$__rate_interval] $other"#,
            &vars,
        );
        assert_eq!(
            e,
            r#"x{service="check\\'out",http_route=~"/users/\\{id\\}",version=~"(1\\.2\\.3|2\\.0)",namespace=~".*"}[1m] $other"#
        );
        // `$service_name` is not `$service` followed by text.
        assert_eq!(interpolate("$service_name", &vars), "$service_name");
    }
}
