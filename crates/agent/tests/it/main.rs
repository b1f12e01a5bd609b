//! Tests of the agent crate: the agent against a fake server speaking the protocol, running
//! jobs on the real Docker engine (the local busybox test image only; nothing is pulled).

mod checks;
mod clone;
mod logs;
mod resilience;
mod server;
mod stop;
mod support;
