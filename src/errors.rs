//! Error text for people: an error with every cause under it, because HTTP clients wrap the
//! reason that matters (refused, untrusted certificate) in generic layers.

/// Why an HTTP request failed, in a few words: reqwest and hyper wrap the reason that matters
/// (refused, reset, untrusted certificate) in generic layers ("error sending request for url
/// (...)", "client error (Connect)"), so the innermost cause; a timeout or a URL reqwest cannot
/// use says so instead.
pub fn http_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".to_string();
    }
    if e.is_builder() {
        return "not a usable http:// or https:// URL".to_string();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// `e` and its causes, outermost first, joined by ": ".
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A listening address that could not be bound, naming the key or flag that set it. The
/// reason is in words (and the OS error where it says more), without a source: printing a
/// chain adds nothing.
#[derive(Debug, thiserror::Error)]
#[error("{key} {addr}: {}", bind_reason(.error))]
pub struct BindError {
    /// The config key or flag, e.g. `listen`, `admin`, `--listen`.
    pub key: &'static str,
    pub addr: std::net::SocketAddr,
    pub error: std::io::Error,
}

fn bind_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address already in use: another process listens there".to_string(),
        std::io::ErrorKind::AddrNotAvailable => "no such address on this machine".to_string(),
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot listen: {e} (ports below 1024 need CAP_NET_BIND_SERVICE)")
        }
        _ => format!("cannot listen: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_name_the_key_and_say_why_in_words() {
        let addr: std::net::SocketAddr = "127.0.0.1:15001".parse().expect("addr");
        let e = BindError { key: "listen", addr, error: std::io::ErrorKind::AddrInUse.into() };
        assert_eq!(e.to_string(), "listen 127.0.0.1:15001: address already in use: another process listens there");
        let e = BindError { key: "--listen", addr, error: std::io::Error::other("boom") };
        assert_eq!(e.to_string(), "--listen 127.0.0.1:15001: cannot listen: boom");
    }

    #[test]
    fn causes_are_joined_outermost_first() {
        let inner = std::io::Error::other("refused");
        let outer =
            std::io::Error::other(BindError { key: "admin", addr: "127.0.0.1:1".parse().expect("addr"), error: inner });
        assert_eq!(with_causes(&outer), "admin 127.0.0.1:1: cannot listen: refused");
    }
}
