//! W3C trace-context hygiene at the proxy: what the upstream receives for valid, invalid and
//! conflicting incoming trace headers.

use crate::common;
