//! The deployer: the environment repository's format (what reads, and every mistake with its
//! place), the plan, image automation's decisions, promotions against real git repositories,
//! the deployer's own files, and the Swarm target on a real single-node Swarm.

// A test stops at what it did not expect.
#![allow(clippy::unwrap_used)]

mod automation;
mod format;
mod hooks;
mod image_updates;
mod plan;
mod promote;
mod store;
mod swarm;
