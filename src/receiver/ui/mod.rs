//! The receiver's web page at `/`: which services have firing alerts and since when, an
//! alert's history as a timeline, and per service the latest readiness report (checks,
//! evidence, blocking reasons) with the canary judgement plotted, canary against baseline.
//!
//! Server-rendered HTML (`render`, `plot`: pure, unit-tested) with one small script that
//! refreshes the live part; every view works without JavaScript. The HTML is written with
//! maud, whose `html!` escapes every value it is given: labels and annotations come from
//! whoever can post alerts, and a template that escapes by default is safer than remembering
//! to escape each of them by hand. A content security policy that allows no inline script is
//! the second line of defence.
//!
//! Same credentials as the API (`auth`): a Basic-auth receiver answers 401 with its
//! `WWW-Authenticate` challenge, so the browser prompts; a Bearer-token receiver also accepts a
//! session cookie from the login form (`session`), as a browser cannot send the header itself.
//! Without credentials an unauthenticated browser gets the login form or the 401, never data.

pub mod plot;
pub mod render;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;

use super::auth::Credentials;
use super::http::App;
use super::payload::{Status, now_nanos};
use super::store::{AlertQuery, AlertState};
use session::Sessions;

/// Most alerts a page lists.
const PAGE_LIMIT: usize = 1000;
/// Largest login form accepted.
const MAX_FORM: usize = 4096;

struct Ui {
    app: Arc<App>,
    sessions: Sessions,
}

/// The page's routes: `/`, `/alerts/{fingerprint}`, `/services/{service}`, `/ui.js`,
/// `/login`, `/logout` (POST, from the page's sign-out button).
pub fn router(app: Arc<App>) -> Router {
    let ui = Arc::new(Ui { app, sessions: Sessions::default() });
    Router::new()
        .route("/", get(overview))
        .route("/alerts/{fingerprint}", get(alert))
        .route("/services/{service}", get(service))
        .route("/ui.js", get(script))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .with_state(ui)
}

/// Headers of every page: no caching of alert data, no framing, no inline script.
fn html(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_static(to))]).into_response()
}

/// Who is asking.
enum Visitor {
    /// No credentials are configured, or the request carries them in `Authorization`.
    Open,
    /// A Bearer receiver's browser with a live session.
    Session,
}

/// Lets the request in, or answers it with the login form (Bearer) or the 401 prompt
/// (Basic), without any data.
fn admit(ui: &Ui, headers: &HeaderMap) -> Result<Visitor, Box<Response>> {
    let creds = &ui.app.credentials;
    if creds.check(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        return Ok(Visitor::Open);
    }
    match creds {
        Credentials::Bearer(_) => {
            if session_id(headers).is_some_and(|id| ui.sessions.valid(id)) {
                return Ok(Visitor::Session);
            }
            Err(Box::new(html(StatusCode::UNAUTHORIZED, render::login(None))))
        }
        _ => {
            let mut r = html(StatusCode::UNAUTHORIZED, render::denied());
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(creds.challenge()));
            Err(Box::new(r))
        }
    }
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(header::COOKIE).iter().find_map(|v| session::from_cookie_header(v.as_bytes()))
}

/// The whole page, or with `?fragment=1` only its live part (for the script).
fn view(visitor: Visitor, params: &HashMap<String, String>, title: &str, live: Markup) -> Response {
    if params.get("fragment").is_some_and(|v| v == "1") {
        return html(StatusCode::OK, live);
    }
    html(StatusCode::OK, render::page(title, matches!(visitor, Visitor::Session), live))
}

fn store_error(e: impl std::fmt::Display) -> Response {
    let body = maud::html! { p.error-text { "cannot query the store: " (e.to_string()) } };
    html(StatusCode::SERVICE_UNAVAILABLE, render::page("store unavailable", false, body))
}

async fn overview(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let visitor = match admit(&ui, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let now = now_nanos();
    let all = match ui.app.store.alerts(AlertQuery { limit: PAGE_LIMIT, now, ..AlertQuery::default() }).await {
        Ok(a) => a,
        Err(e) => return store_error(e),
    };
    let firing: Vec<_> = all.iter().filter(|a| a.state == Status::Firing).cloned().collect();
    let rows = render::service_rows(&all, &ui.app.reports.services());
    view(visitor, &params, "alerts", render::overview(&firing, &rows, now))
}

async fn alert(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let visitor = match admit(&ui, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let now = now_nanos();
    let history = match ui.app.store.history(&fingerprint).await {
        Ok(h) => h,
        Err(e) => return store_error(e),
    };
    // The alert's current state, from its latest event (the labels are the alert's own), judged
    // as the store judges it: firing while that event says so and its endsAt has not passed.
    let state = history.last().map(|h| AlertState {
        fingerprint: fingerprint.clone(),
        state: if h.status == Status::Firing && h.ends_at.is_none_or(|e| e > now) {
            Status::Firing
        } else {
            Status::Resolved
        },
        labels: h.labels.clone(),
        annotations: h.annotations.clone(),
        starts_at: h.starts_at,
        ends_at: h.ends_at,
        generator_url: h.generator_url.clone(),
        last_notified_at: h.received_at,
        notifications: history.len() as i64,
    });
    let live = render::alert(&fingerprint, state.as_ref(), &history, now);
    let mut r = view(visitor, &params, "alert", live);
    if history.is_empty() {
        *r.status_mut() = StatusCode::NOT_FOUND;
    }
    r
}

async fn service(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let visitor = match admit(&ui, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let now = now_nanos();
    let q = AlertQuery {
        service: Some(name.clone()),
        state: Some(Status::Firing),
        limit: PAGE_LIMIT,
        now,
        ..AlertQuery::default()
    };
    let firing = match ui.app.store.alerts(q).await {
        Ok(a) => a,
        Err(e) => return store_error(e),
    };
    let report = ui.app.reports.get(&name);
    view(visitor, &params, &name, render::service(&name, &firing, report.as_ref(), now))
}

async fn script() -> Response {
    let mut r = render::LIVE_JS.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

async fn login_form(State(ui): State<Arc<Ui>>) -> Response {
    match ui.app.credentials {
        Credentials::Bearer(_) => html(StatusCode::OK, render::login(None)),
        // Basic: the browser's own prompt signs in; without credentials there is nothing to do.
        _ => redirect("/"),
    }
}

/// Trades the token for a session: a 303 to `/` with the cookie, or the form again with a 401.
/// The token is compared as the API compares it and never logged.
async fn login(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    if !matches!(ui.app.credentials, Credentials::Bearer(_)) {
        return redirect("/");
    }
    let body = match axum::body::to_bytes(req.into_body(), MAX_FORM).await {
        Ok(b) => b,
        Err(_) => return html(StatusCode::PAYLOAD_TOO_LARGE, render::login(Some("The form is too large."))),
    };
    let token = session::form_field(&body, "token").unwrap_or_default();
    if token.is_empty() || !ui.app.credentials.check(Some(format!("Bearer {token}").as_bytes())) {
        tracing::warn!("page sign-in refused: wrong token");
        return html(StatusCode::UNAUTHORIZED, render::login(Some("Wrong token.")));
    }
    match ui.sessions.create() {
        Ok(id) => {
            tracing::info!("page sign-in");
            let mut r = redirect("/");
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => html(StatusCode::SERVICE_UNAVAILABLE, render::login(Some(&e))),
    }
}

async fn logout(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        ui.sessions.remove(id);
    }
    let mut r = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
