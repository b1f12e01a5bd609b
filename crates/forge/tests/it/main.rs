//! Tests of the forge crate.
