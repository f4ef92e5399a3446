//! Credentials of the receiver's write and query endpoints: a Bearer token or Basic auth
//! user:password, read from a file and compared in constant time (no secret ever logged).

use std::path::Path;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a request must present. Only digests are kept, so comparisons take the same time
/// whatever the length or content of the candidate.
#[derive(Clone)]
pub enum Credentials {
    None,
    Bearer([u8; 32]),
    /// Digest of `user:password`.
    Basic([u8; 32]),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::None => "Credentials::None",
            Credentials::Bearer(_) => "Credentials::Bearer(<redacted>)",
            Credentials::Basic(_) => "Credentials::Basic(<redacted>)",
        })
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Reads a secret file; a trailing newline (as editors and `echo` leave) is not part of it.
fn read_secret(flag: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: cannot read: {e}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(format!("{flag} {}: the file is empty", path.display()));
    }
    Ok(secret)
}

impl Credentials {
    pub fn bearer_from_file(path: &Path) -> Result<Credentials, String> {
        let token = read_secret("--bearer-token-file", path)?;
        if token.lines().count() > 1 {
            return Err(format!("--bearer-token-file {}: expected one line with the token", path.display()));
        }
        Ok(Credentials::Bearer(digest(token.as_bytes())))
    }

    pub fn basic_from_file(path: &Path) -> Result<Credentials, String> {
        let line = read_secret("--basic-auth-file", path)?;
        if line.lines().count() > 1 || !line.contains(':') {
            return Err(format!("--basic-auth-file {}: expected one line `user:password`", path.display()));
        }
        Ok(Credentials::Basic(digest(line.as_bytes())))
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Credentials::None)
    }

    /// The `WWW-Authenticate` challenge for a 401.
    pub fn challenge(&self) -> &'static str {
        match self {
            Credentials::Basic(_) => "Basic realm=\"redline\"",
            _ => "Bearer realm=\"redline\"",
        }
    }

    /// Whether an `Authorization` header value satisfies these credentials.
    pub fn check(&self, header: Option<&[u8]>) -> bool {
        let expected = match self {
            Credentials::None => return true,
            Credentials::Bearer(d) | Credentials::Basic(d) => d,
        };
        let Some(header) = header else { return false };
        let Some(space) = header.iter().position(|b| *b == b' ') else { return false };
        let (scheme, rest) = (&header[..space], header[space + 1..].trim_ascii());
        let candidate = match self {
            Credentials::Bearer(_) if scheme.eq_ignore_ascii_case(b"bearer") => rest.to_vec(),
            Credentials::Basic(_) if scheme.eq_ignore_ascii_case(b"basic") => {
                match base64::engine::general_purpose::STANDARD.decode(rest) {
                    Ok(decoded) => decoded,
                    Err(_) => return false,
                }
            }
            _ => return false,
        };
        bool::from(digest(&candidate).ct_eq(expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content.as_bytes()).expect("write");
        f
    }

    #[test]
    fn bearer_tokens_are_compared_exactly() {
        let c = Credentials::bearer_from_file(file("s3cret\n").path()).expect("token");
        assert!(c.check(Some(b"Bearer s3cret")));
        assert!(c.check(Some(b"bearer s3cret")));
        assert!(!c.check(Some(b"Bearer s3cre")));
        assert!(!c.check(Some(b"Bearer s3cret2")));
        assert!(!c.check(Some(b"Basic s3cret")));
        assert!(!c.check(Some(b"s3cret")));
        assert!(!c.check(None));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn basic_auth_decodes_user_and_password() {
        let c = Credentials::basic_from_file(file("am:pa:ss\n").path()).expect("user:password");
        let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("am:pa:ss"));
        let bad = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("am:pass"));
        assert!(c.check(Some(good.as_bytes())));
        assert!(!c.check(Some(bad.as_bytes())));
        assert!(!c.check(Some(b"Basic !!!")));
    }

    #[test]
    fn bad_secret_files_are_refused_with_the_flag_and_path() {
        let err = Credentials::bearer_from_file(Path::new("/nonexistent/token")).expect_err("missing");
        assert!(err.starts_with("--bearer-token-file /nonexistent/token: cannot read"), "{err}");
        let err = Credentials::bearer_from_file(file("\n").path()).expect_err("empty");
        assert!(err.ends_with("the file is empty"), "{err}");
        let err = Credentials::basic_from_file(file("nocolon").path()).expect_err("no colon");
        assert!(err.contains("expected one line `user:password`"), "{err}");
    }
}
