//! Store tests: every aggregate on SQLite and on PostgreSQL.
//!
//! Each test of a `Store` runs twice, as `<feature>::sqlite` (a temporary folder) and
//! `<feature>::postgres` (a fresh database made through `GANTRY_TEST_POSTGRES_URL` and dropped
//! afterwards); see `harness`. `logs` tests `LogFiles` alone, on a temporary folder.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod harness;
mod fixtures;

mod agents;
mod artifacts;
mod builds;
mod environments;
mod logs;
mod notifiers;
mod open;
mod queue;
mod registries;
mod repos;
mod secrets;
mod security;
mod triggers;
mod users;
