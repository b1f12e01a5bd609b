//! Tests of the agent crate.
