//! Tests of the docker crate's own API against the real engine (the local busybox test image
//! only; nothing is pulled), one module per kind of resource. Each test labels what it makes
//! with an id of its own, removes it, and checks by that label that nothing is left; every wait
//! on the engine has a ceiling.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod build;
mod cleanup;
mod containers;
mod engine;
mod images;
mod networks;
mod support;
mod volumes;
