//! The judgement of each readiness check over data already fetched (metrics text, log lines,
//! dashboard JSON, rule groups, API answers): pure functions, unit-tested without I/O.

pub mod alerts;
pub mod dashboard;
pub mod firing;
pub mod logs;
pub mod metrics;
pub mod tracing;

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;

/// A vector selector met in an expression: metric name and its label matchers.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub name: Option<String>,
    pub matchers: Vec<(String, MatchOp, String)>,
}

/// What an expression reads: its selectors, the functions it calls, whether it divides.
#[derive(Debug, Default, Clone)]
pub struct ExprUse {
    pub selectors: Vec<Selector>,
    pub functions: Vec<&'static str>,
    pub divides: bool,
}

impl ExprUse {
    pub fn of(expr: &Expr) -> ExprUse {
        let mut u = ExprUse::default();
        walk(expr, &mut u);
        u
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.selectors.iter().filter_map(|s| s.name.as_deref())
    }
}

fn selector(vs: &promql_parser::parser::VectorSelector, u: &mut ExprUse) {
    let mut name = vs.name.clone();
    let mut matchers = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" && matches!(m.op, MatchOp::Equal) {
            name = Some(m.value.clone());
        } else {
            matchers.push((m.name.clone(), m.op.clone(), m.value.clone()));
        }
    }
    u.selectors.push(Selector { name, matchers });
}

fn walk(e: &Expr, u: &mut ExprUse) {
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, u);
            if let Some(p) = &a.param {
                walk(p, u);
            }
        }
        Expr::Unary(x) => walk(&x.expr, u),
        Expr::Binary(b) => {
            if b.op.to_string() == "/" {
                u.divides = true;
            }
            walk(&b.lhs, u);
            walk(&b.rhs, u);
        }
        Expr::Paren(p) => walk(&p.expr, u),
        Expr::Subquery(s) => walk(&s.expr, u),
        Expr::VectorSelector(vs) => selector(vs, u),
        Expr::MatrixSelector(m) => selector(&m.vs, u),
        Expr::Call(c) => {
            u.functions.push(c.func.name);
            for a in &c.args.args {
                walk(a, u);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}
