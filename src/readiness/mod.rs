//! The production-readiness check (`redline readiness-check`): the pure logic of each check, kept
//! apart from the I/O that feeds it. So far: reading test coverage reports (`tests.coverage`).

pub mod coverage;
