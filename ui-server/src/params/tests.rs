//! Unit tests of `params`.
