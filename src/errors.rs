//! Error text for people: an error with every cause under it, because HTTP clients wrap the
//! reason that matters (refused, untrusted certificate) in generic layers.

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
