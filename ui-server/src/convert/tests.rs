//! Unit tests of `convert`.
