//! The production-readiness check: `checks` judges fetched data (pure), `checklist` fetches it
//! (files, HTTP) for the CLI (`command`) and the receiver's gates, `render` prints the `report`.

pub mod checklist;
pub mod checks;
pub mod command;
pub mod coverage;
pub mod render;
pub mod report;
