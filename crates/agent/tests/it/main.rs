//! Tests of the agent crate: the agent against a fake server speaking the protocol, running
//! jobs on the real Docker engine (the local busybox test image only; nothing is pulled).

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod checks;
mod clone;
mod logs;
mod resilience;
mod server;
mod stop;
mod support;
