//! Maps a request path to its `http_route` label: configured templates first, else a
//! normalised path (ids become `{id}`), interned up to `max_routes`, then `__other__`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

/// The label value for routes past the cap.
pub const OTHER_ROUTE: &str = "__other__";
/// Normalised routes longer than this are counted as `__other__` so one label cannot be huge.
const MAX_ROUTE_LEN: usize = 256;

/// An interned route: a small id for metric keys plus the label text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub id: u32,
    pub name: Arc<str>,
}

pub struct RouteTable {
    templates: matchit::Router<Route>,
    dynamic: DashMap<Box<str>, Route>,
    interned: AtomicUsize,
    max_routes: usize,
    other: Route,
}

/// Checks one configured template such as `/users/{id}`.
pub fn validate_template(t: &str) -> Result<(), String> {
    if !t.starts_with('/') {
        return Err(format!("route template {t:?} must start with '/'"));
    }
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or_else(|| format!("route template {t:?}: '{{' without '}}'"))? + open;
        let name = &rest[open + 1..close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("route template {t:?}: parameter {{{name}}} must be a name of letters, digits or '_'"));
        }
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("route template {t:?}: '}}' without '{{'"));
    }
    Ok(())
}

impl RouteTable {
    pub fn new(templates: &[String], max_routes: usize) -> Result<Self, String> {
        let mut router = matchit::Router::new();
        for (i, t) in templates.iter().enumerate() {
            validate_template(t)?;
            let route = Route { id: i as u32, name: Arc::from(t.as_str()) };
            router.insert(t.as_str(), route).map_err(|e| format!("route template {t:?}: {e}"))?;
        }
        Ok(RouteTable {
            templates: router,
            dynamic: DashMap::new(),
            interned: AtomicUsize::new(templates.len()),
            max_routes,
            other: Route { id: u32::MAX, name: Arc::from(OTHER_ROUTE) },
        })
    }

    /// The route of a request path (without query string).
    pub fn route_of(&self, path: &str) -> Route {
        if let Ok(m) = self.templates.at(path) {
            return m.value.clone();
        }
        let normalised = normalise(path);
        if normalised.len() > MAX_ROUTE_LEN {
            return self.other.clone();
        }
        if let Some(r) = self.dynamic.get(normalised.as_ref()) {
            return r.clone();
        }
        // Reserve a slot before inserting so concurrent first-sightings cannot exceed the cap.
        let slot = self.interned.fetch_add(1, Ordering::Relaxed);
        if slot >= self.max_routes {
            self.interned.fetch_sub(1, Ordering::Relaxed);
            return self.other.clone();
        }
        let route = Route { id: slot as u32, name: Arc::from(normalised.as_ref()) };
        let entry = self.dynamic.entry(normalised.into_owned().into_boxed_str()).or_insert_with(|| route.clone());
        if entry.id != route.id {
            // Another request interned the same route first: give our slot back.
            self.interned.fetch_sub(1, Ordering::Relaxed);
        }
        entry.clone()
    }

    pub fn other(&self) -> &Route {
        &self.other
    }
}

/// Replaces id-like path segments (numbers, UUIDs, long hex) with `{id}`.
pub fn normalise(path: &str) -> std::borrow::Cow<'_, str> {
    if path.is_empty() {
        return "/".into();
    }
    if !path.split('/').any(is_id_segment) {
        return path.into();
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_id_segment(seg) { "{id}" } else { seg });
    }
    out.into()
}

fn is_id_segment(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let b = seg.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize) -> RouteTable {
        RouteTable::new(&["/users/{id}".to_string(), "/orders/{id}/items".to_string()], max).expect("valid templates")
    }

    #[test]
    fn templates_match_first() {
        let t = table(10);
        assert_eq!(&*t.route_of("/users/42").name, "/users/{id}");
        assert_eq!(&*t.route_of("/users/alice").name, "/users/{id}");
        assert_eq!(&*t.route_of("/orders/7/items").name, "/orders/{id}/items");
    }

    #[test]
    fn unmatched_paths_are_normalised() {
        assert_eq!(normalise("/a/123/b"), "/a/{id}/b");
        assert_eq!(normalise("/x/550e8400-e29b-41d4-a716-446655440000"), "/x/{id}");
        assert_eq!(normalise("/commit/0123456789abcdef0123"), "/commit/{id}");
        assert_eq!(normalise("/static/app.css"), "/static/app.css");
        assert_eq!(normalise("/v2/deadbeef"), "/v2/deadbeef");
        assert_eq!(normalise(""), "/");
    }

    #[test]
    fn the_cap_sends_further_routes_to_other() {
        let t = table(5);
        let names: std::collections::HashSet<_> =
            (0..100).map(|i| t.route_of(&format!("/p{i}")).name.to_string()).collect();
        // 2 templates + 3 dynamic routes fill the cap of 5; everything else is __other__.
        assert_eq!(names.len(), 4);
        assert!(names.contains(OTHER_ROUTE));
        assert_eq!(t.route_of("/p0").name, t.route_of("/p0").name);
    }

    #[test]
    fn ids_are_distinct_per_route() {
        let t = table(10);
        let a = t.route_of("/a");
        let b = t.route_of("/b");
        assert_ne!(a.id, b.id);
        assert_eq!(t.route_of("/a").id, a.id);
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(validate_template("users").is_err());
        assert!(validate_template("/users/{").is_err());
        assert!(validate_template("/users/{}").is_err());
        assert!(validate_template("/users/{id}/x}").is_err());
        assert!(RouteTable::new(&["/a/{x}".into(), "/a/{y}".into()], 10).is_err());
    }
}
