//! Unit tests of `policies`.
