//! Tests of the forge crate: webhooks against the forges' documented payloads, commit statuses
//! against a local double of each forge's API, git against real repositories in temporary
//! folders. Nothing leaves the machine: URLs are file:// or 127.0.0.1.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod git;
mod status;
mod webhook;
