//! Integration tests of the runtime: one binary, one module per feature.

mod mask;
mod scheduler;
mod trust;
