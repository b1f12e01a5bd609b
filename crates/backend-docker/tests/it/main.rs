//! Integration tests of the Docker backend against the real engine, one module per feature.
//! Each test runs under a run id of its own and checks, by label, that it leaked nothing.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod cleanup;
mod engine;
mod image_build;
mod lifecycle;
mod overhead;
mod services;
mod support;
mod workspace;
