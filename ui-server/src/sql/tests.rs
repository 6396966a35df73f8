//! Unit tests of `sql`.
