//! The environment repository's format: what reads, and every mistake with its place; the
//! plan against what targets observe; the Swarm target on a real single-node Swarm.

// A test stops at what it did not expect.
#![allow(clippy::unwrap_used)]

mod format;
mod plan;
mod swarm;
