//! PromQL evaluation (being written).
