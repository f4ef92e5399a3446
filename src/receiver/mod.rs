//! `redline receiver`: an Alertmanager webhook receiver that stores every notification durably
//! (SQLite or PostgreSQL) and answers promotion gates (`command`); `redline alerts list` queries
//! it (`client`); a web page for people at `/` (`ui`).

pub mod auth;
pub mod client;
pub mod command;
pub mod gates;
pub mod http;
pub mod metrics;
pub mod payload;
pub mod readiness;
pub mod store;
pub mod ui;
