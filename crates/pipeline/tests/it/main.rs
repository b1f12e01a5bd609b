//! Integration tests of the pipeline crate: one binary, one module per feature.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod compatibility;
mod conditions;
mod corpus;
mod diagnostics;
mod docs;
mod environment;
mod evaluate;
mod fuzz;
mod graph;
mod image_build;
mod readiness;
mod substitution;
mod support;
mod yaml;
