//! Server tests: the HTTP application through `oneshot` on a real, migrated database — every
//! test on SQLite and on PostgreSQL — with real git repositories for triggers.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod api;
mod artifacts;
mod environments;
mod harness;
mod hooks;
mod openapi;
mod promotions;
mod queue;
mod reporting;
mod request;
mod security;
mod ui;
mod ui_admin;
