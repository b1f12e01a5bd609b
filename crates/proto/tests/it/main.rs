//! Tests of the proto crate: every type on the wire reads back from its own JSON unchanged, and
//! its JSON is pinned by a snapshot. Agents and servers of adjacent versions must understand each
//! other, so a change of any shape here shows in review as a changed snapshot.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod agent;
mod api;
mod delivery;
mod state;
mod support;
