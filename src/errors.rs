//! Error text for people: an error with every cause under it, because HTTP clients wrap the
//! reason that matters (refused, untrusted certificate) in generic layers; and what a command
//! ends with ([`Outcome`]), which `main` turns into the exit code.

/// What every command's entry point returns (`<job>::command::run(args: Args) -> Outcome`):
/// a verdict, or why there is none. `main` prints the error, once, as `redline <command>: ` and
/// its cause chain, and maps the outcome to the exit code ([`exit_code`]).
pub type Outcome = Result<Verdict, CommandError>;

/// The answer of a command that ran to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Success: ready, passed, served until a signal, written (exit 0).
    Pass,
    /// A negative verdict: not ready, a rule check or test that failed, a canary that does not
    /// pass, dashboards that differ (exit 1). The command has printed why.
    Fail,
}

impl Verdict {
    pub fn of(pass: bool) -> Verdict {
        if pass { Verdict::Pass } else { Verdict::Fail }
    }
}

/// Why a command gave no verdict.
#[derive(Debug)]
pub enum CommandError {
    /// A usage, configuration, bind or start failure, or output that could not be written
    /// (exit 2).
    Refused(anyhow::Error),
    /// A failure after the command had started and done part of its work: the receiver's
    /// server stopping with an error, dashboard files that could not be written (exit 1).
    Failed(anyhow::Error),
}

impl CommandError {
    /// A refusal from any error or message.
    pub fn refused(e: impl Into<anyhow::Error>) -> CommandError {
        CommandError::Refused(e.into())
    }

    /// A refusal with a message of its own.
    pub fn refused_msg(message: impl std::fmt::Display) -> CommandError {
        CommandError::Refused(anyhow::anyhow!("{message}"))
    }

    pub fn error(&self) -> &anyhow::Error {
        match self {
            CommandError::Refused(e) | CommandError::Failed(e) => e,
        }
    }
}

/// Errors met with `?` in a command are refusals; a command says `Failed` where it is not.
impl From<anyhow::Error> for CommandError {
    fn from(e: anyhow::Error) -> CommandError {
        CommandError::Refused(e)
    }
}

/// The exit code of an outcome: 0 success, 1 a negative verdict or a failure after the start,
/// 2 a usage, configuration, bind or start failure.
pub fn exit_code(outcome: &Outcome) -> u8 {
    match outcome {
        Ok(Verdict::Pass) => 0,
        Ok(Verdict::Fail) | Err(CommandError::Failed(_)) => 1,
        Err(CommandError::Refused(_)) => 2,
    }
}

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
