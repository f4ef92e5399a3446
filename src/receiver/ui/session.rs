//! Browser sessions of the page when the receiver takes a Bearer token: the login form trades
//! the token for a random session id in an `HttpOnly`, `SameSite=Strict` cookie, so the token
//! itself never sits in a cookie, a URL or a log line. Only a SHA-256 digest of each id is
//! kept (in memory: a restart signs everyone out), with an expiry; the number of live sessions
//! is bounded. Also the small parsers the handlers need: the `Cookie` header and a form body.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "redline_session";
/// How long a session lasts after the login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Live sessions at most; past it the one closest to expiry goes.
const MAX: usize = 10_000;

#[derive(Default)]
pub struct Sessions {
    expiry: Mutex<HashMap<[u8; 32], Instant>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// A new session: its id (64 hex digits from the OS's random source).
    pub fn create(&self) -> Result<String, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes for a session id: {e}"))?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut map = self.expiry.lock().map_err(|_| "the session table is poisoned".to_string())?;
        map.retain(|_, expiry| *expiry > now);
        while map.len() >= MAX {
            let Some(first) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) else { break };
            map.remove(&first);
        }
        map.insert(digest(&id), now + LIFETIME);
        Ok(id)
    }

    /// Whether `id` names a live session.
    pub fn valid(&self, id: &str) -> bool {
        let Ok(map) = self.expiry.lock() else { return false };
        map.get(&digest(id)).is_some_and(|expiry| *expiry > Instant::now())
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.expiry.lock() {
            map.remove(&digest(id));
        }
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs())
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id in a `Cookie` header (`a=b; redline_session=...`), if any.
pub fn from_cookie_header(header: &[u8]) -> Option<&str> {
    let header = std::str::from_utf8(header).ok()?;
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then_some(value)
    })
}

/// One field of an `application/x-www-form-urlencoded` body (`+` is a space, `%XX` a byte).
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().ok().map(|c| c.into_owned())
        };
        (decode(k)? == name).then(|| decode(v)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_live_and_removable() {
        let s = Sessions::default();
        let a = s.create().expect("id");
        let b = s.create().expect("id");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(s.valid(&a) && s.valid(&b));
        assert!(!s.valid("0000"));
        s.remove(&a);
        assert!(!s.valid(&a) && s.valid(&b));
    }

    #[test]
    fn cookies_say_http_only_and_strict() {
        let c = set_cookie("abc");
        assert!(c.starts_with("redline_session=abc;") && c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(clear_cookie().contains("Max-Age=0"));
        assert_eq!(from_cookie_header(b"x=1; redline_session=abc; y=2"), Some("abc"));
        assert_eq!(from_cookie_header(b"redline_session="), None);
        assert_eq!(from_cookie_header(b"other=abc"), None);
        assert_eq!(from_cookie_header(&[0xff, 0xfe]), None);
    }

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(form_field(b"token=a%2Bb+c&x=1", "token").as_deref(), Some("a+b c"));
        assert_eq!(form_field(b"x=1", "token"), None);
        assert_eq!(form_field(b"token=%ff", "token"), None, "not UTF-8");
        assert_eq!(form_field(b"token", "token").as_deref(), Some(""));
    }
}
