//! Integration tests of the runtime: one binary, one module per feature.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod mask;
mod scheduler;
mod trust;
