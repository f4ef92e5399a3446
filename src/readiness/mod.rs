//! The production-readiness check (`redline readiness-check`): `checks` judges fetched data
//! (pure), `command` fetches it (files, HTTP) and prints the `report` in any `render` format.

pub mod checks;
pub mod command;
pub mod coverage;
pub mod render;
pub mod report;
