//! The environment repository's format: what reads, and every mistake with its place.

// A test stops at what it did not expect.
#![allow(clippy::unwrap_used)]

mod format;
mod plan;
