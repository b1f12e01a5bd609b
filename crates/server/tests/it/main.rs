//! Tests of the server crate.
