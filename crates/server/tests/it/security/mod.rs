//! Security: one test per item of the attack report (issue 8), each named after what it proves,
//! in a section headed by its item.

mod access;
mod remotes;
