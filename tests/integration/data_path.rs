//! Hostile clients and broken upstreams: connection deadlines, safe upstream reuse, truthful
//! error classification, one access line and one count per request, Host and method hygiene,
//! route cardinality.

use crate::common;
