//! The Gantry server.
