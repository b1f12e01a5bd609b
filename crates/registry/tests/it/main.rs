//! Tests of the registry crate against the real test registries of `scripts/registry-up.sh`
//! (127.0.0.1:5000 without authentication, 127.0.0.1:5001 with htpasswd), with images built
//! and pushed by the Docker engine from the local busybox. Each test works in a repository of
//! its own and removes the images it built from the engine; every wait has a ceiling.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod attestation;
mod reading;
mod support;
mod tags;
