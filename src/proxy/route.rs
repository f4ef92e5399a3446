//! Maps a request path to its `http_route` label: configured templates first, else a
//! normalised path (ids become `{id}`), interned up to `max_routes`, then `__other__`.
//!
//! A path not seen before is only provisional while its request runs: it takes a place in the
//! table once the upstream answers it with a status that says the route exists (anything but
//! 404, 405 and 410), or fails (a 502 or 504: the service should have served it). Requests
//! answered so, and those redline refused or the client gave up on, share the label
//! `__unmatched__`, so a scan of random paths cannot use up `max_routes` and leave the service's
//! real routes first seen later counted as `__other__`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

/// The label value for routes past the cap.
pub const OTHER_ROUTE: &str = "__other__";
/// The label value for paths that turned out not to be routes (404, 405, 410, no answer).
pub const UNMATCHED_ROUTE: &str = "__unmatched__";
/// The id of a route not interned yet.
const PROVISIONAL: u32 = u32::MAX - 1;
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
    unmatched: Route,
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
            unmatched: Route { id: u32::MAX - 2, name: Arc::from(UNMATCHED_ROUTE) },
        })
    }

    /// The route of a request path (without query string): a template's, an interned one, or
    /// a provisional one to [`RouteTable::settle`] once the request has its answer.
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
        Route { id: PROVISIONAL, name: Arc::from(normalised.as_ref()) }
    }

    /// The label a finished request counts under: a provisional route is interned when the
    /// upstream's answer (`status`, None when it gave none) shows the route exists.
    pub fn settle(&self, route: &Route, status: Option<u16>) -> Route {
        if route.id != PROVISIONAL {
            return route.clone();
        }
        match status {
            None | Some(404 | 405 | 410) => self.unmatched.clone(),
            Some(_) => self.intern(&route.name),
        }
    }

    fn intern(&self, normalised: &str) -> Route {
        if let Some(r) = self.dynamic.get(normalised) {
            return r.clone();
        }
        // Reserve a slot before inserting so concurrent first-sightings cannot exceed the cap.
        let slot = self.interned.fetch_add(1, Ordering::Relaxed);
        if slot >= self.max_routes {
            self.interned.fetch_sub(1, Ordering::Relaxed);
            return self.other.clone();
        }
        let route = Route { id: slot as u32, name: Arc::from(normalised) };
        let entry = self.dynamic.entry(Box::from(normalised)).or_insert_with(|| route.clone());
        if entry.id != route.id {
            // Another request interned the same route first: give our slot back.
            self.interned.fetch_sub(1, Ordering::Relaxed);
        }
        entry.clone()
    }

    pub fn unmatched(&self) -> &Route {
        &self.unmatched
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
            (0..100).map(|i| seen(&t, &format!("/p{i}"), 200).name.to_string()).collect();
        // 2 templates + 3 dynamic routes fill the cap of 5; everything else is __other__.
        assert_eq!(names.len(), 4);
        assert!(names.contains(OTHER_ROUTE));
        assert_eq!(t.route_of("/p0").name, t.route_of("/p0").name);
    }

    /// A request for `path` answered with `status`, as the proxy settles it.
    fn seen(t: &RouteTable, path: &str, status: u16) -> Route {
        t.settle(&t.route_of(path), Some(status))
    }

    #[test]
    fn ids_are_distinct_per_route() {
        let t = table(10);
        let a = seen(&t, "/a", 200);
        let b = seen(&t, "/b", 200);
        assert_ne!(a.id, b.id);
        assert_eq!(t.route_of("/a").id, a.id);
    }

    #[test]
    fn unknown_paths_answered_as_not_found_take_no_place() {
        let t = table(5);
        for i in 0..5000 {
            let r = seen(&t, &format!("/scan/{i}x"), if i % 2 == 0 { 404 } else { 405 });
            assert_eq!(&*r.name, UNMATCHED_ROUTE);
        }
        assert_eq!(&*t.settle(&t.route_of("/nobody-answered"), None).name, UNMATCHED_ROUTE);
        assert_eq!(&*seen(&t, "/api/users", 200).name, "/api/users", "a real route still gets its label");
        assert_eq!(&*seen(&t, "/api/users", 404).name, "/api/users", "and keeps it when it answers 404");
        assert_eq!(&*seen(&t, "/users/42", 404).name, "/users/{id}", "templates are never provisional");
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
