//! Validated value types used by config keys: durations, percentages, upstream URLs.
//! Each parses from the same text in YAML, flags and env, so errors read the same everywhere.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written like Prometheus and Go do: `300ms`, `5s`, `1m30s`, `1h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|_| format!("expected a duration such as 300ms, 5s or 1h, got {s:?}"))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A flag's duration that must be above zero (a timeout, a window): 0 would time every
/// request out at once or judge an empty window, and there is no "off".
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    let d: Dur = s.parse()?;
    if d.0.is_zero() {
        return Err(format!("expected a duration above 0, such as 10s; got {s:?} (0 does not turn it off)"));
    }
    Ok(d.0)
}

/// A percentage strictly between 0 and 100, such as an SLO target `99.9`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percent(pub f64);

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: f64 = s
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("expected a percentage such as 99.9, got {s:?}"))?;
        Percent::new(v)
    }
}

impl Percent {
    pub fn new(v: f64) -> Result<Self, String> {
        if v > 0.0 && v < 100.0 {
            Ok(Percent(v))
        } else {
            Err(format!("expected a percentage above 0 and below 100, got {v}"))
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Percent::new(v).map_err(serde::de::Error::custom)
    }
}

/// A ratio in [0, 1], such as a trace sampling ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio(pub f64);

impl FromStr for Ratio {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: f64 = s.trim().parse().map_err(|_| format!("expected a ratio between 0 and 1, got {s:?}"))?;
        Ratio::new(v)
    }
}

impl Ratio {
    pub fn new(v: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&v) { Ok(Ratio(v)) } else { Err(format!("expected a ratio between 0 and 1, got {v}")) }
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ratio::new(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The plain-HTTP upstream the proxy forwards to: `http://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port`, used for the Host header and for readiness probes.
    pub authority: String,
    pub uri: http::Uri,
}

impl FromStr for Upstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected an upstream URL such as http://127.0.0.1:8080";
        let uri: http::Uri = s.trim().parse().map_err(|e| format!("{expected}, got {s:?} ({e})"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{expected} (scheme http), got {s:?}"));
        }
        let authority = uri.authority().ok_or_else(|| format!("{expected}, got {s:?} (no host)"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("{expected} (no path or query), got {s:?}"));
        }
        let authority = match authority.port_u16() {
            Some(_) => authority.as_str().to_string(),
            None => format!("{}:80", authority.host()),
        };
        Ok(Upstream { authority, uri })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An absolute http or https URL, such as an Alertmanager or an OTLP endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(pub String);

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let expected = || format!("expected an http:// or https:// URL such as http://host:9090, got {s:?}");
        let uri: http::Uri = s.parse().map_err(|_| expected())?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("http" | "https"), Some(_)) => Ok(HttpUrl(s.trim_end_matches('/').to_string())),
            _ => Err(expected()),
        }
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// How `/readyz` checks the upstream: a TCP connect, or the standard gRPC health check
/// (`grpc.health.v1.Health/Check`) of the whole server (`grpc`) or one service (`grpc:NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheck {
    Tcp,
    Grpc { service: String },
}

impl FromStr for HealthCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "tcp" => Ok(HealthCheck::Tcp),
            "grpc" => Ok(HealthCheck::Grpc { service: String::new() }),
            other => match other.strip_prefix("grpc:") {
                Some(service)
                    if !service.is_empty()
                        && service.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') =>
                {
                    Ok(HealthCheck::Grpc { service: service.to_string() })
                }
                _ => Err(format!("expected tcp, grpc or grpc:SERVICE (e.g. grpc:shop.Checkout), got {s:?}")),
            },
        }
    }
}

impl<'de> Deserialize<'de> for HealthCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("300ms".parse::<Dur>().map(|d| d.0), Ok(Duration::from_millis(300)));
        assert_eq!("1m30s".parse::<Dur>().map(|d| d.0), Ok(Duration::from_secs(90)));
        assert!("5 parsecs".parse::<Dur>().unwrap_err().contains("expected a duration"));
    }

    #[test]
    fn positive_durations() {
        assert_eq!(positive_duration("10s"), Ok(Duration::from_secs(10)));
        assert!(positive_duration("0s").unwrap_err().starts_with("expected a duration above 0"));
        assert!(positive_duration("soon").unwrap_err().starts_with("expected a duration such as"));
    }

    #[test]
    fn percentages() {
        assert_eq!("99.9".parse::<Percent>(), Ok(Percent(99.9)));
        assert!("100".parse::<Percent>().is_err());
        assert!("abc".parse::<Percent>().unwrap_err().contains("expected a percentage"));
    }

    #[test]
    fn upstreams() {
        let u: Upstream = "http://127.0.0.1:8080".parse().expect("valid upstream");
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!("http://app".parse::<Upstream>().map(|u| u.authority), Ok("app:80".to_string()));
        assert!("https://app:443".parse::<Upstream>().unwrap_err().contains("scheme http"));
        assert_eq!("http://jaeger:4318/".parse::<HttpUrl>(), Ok(HttpUrl("http://jaeger:4318".into())));
        assert_eq!("https://otlp.example.com/".parse::<HttpUrl>(), Ok(HttpUrl("https://otlp.example.com".into())));
        let err = "ftp://otlp.example.com".parse::<HttpUrl>().unwrap_err();
        assert_eq!(err, "expected an http:// or https:// URL such as http://host:9090, got \"ftp://otlp.example.com\"");
        assert!("jaeger:4318".parse::<HttpUrl>().unwrap_err().contains("expected an http:// or https:// URL"));
        assert!("http://a b".parse::<HttpUrl>().unwrap_err().contains("expected an http:// or https:// URL"));
        assert!("http://app:80/base".parse::<Upstream>().unwrap_err().contains("no path"));
        assert!("127.0.0.1:8080".parse::<Upstream>().is_err());
    }

    #[test]
    fn health_checks_parse() {
        assert_eq!("tcp".parse::<HealthCheck>(), Ok(HealthCheck::Tcp));
        assert_eq!("grpc".parse::<HealthCheck>(), Ok(HealthCheck::Grpc { service: String::new() }));
        assert_eq!(
            "grpc:shop.Checkout".parse::<HealthCheck>(),
            Ok(HealthCheck::Grpc { service: "shop.Checkout".into() })
        );
        for bad in ["", "http", "grpc:", "grpc:a b", "grpc:/x"] {
            assert!(bad.parse::<HealthCheck>().is_err(), "{bad:?}");
        }
    }
}
