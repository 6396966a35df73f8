//! The `lab` subcommands, one module each. They do the I/O; the decisions come from the
//! `vigil_lab` library.

pub mod down;
pub mod exec;
pub mod probe;
pub mod serve;
pub mod status;
pub mod up;
