//! What the deployment and demo tests share: where the repository and the workspace's built
//! binaries are, whether the test runs as root, and free local ports. It starts nothing.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
};

/// The repository root (the workspace folder).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lab/ sits in the repository root")
        .to_path_buf()
}

/// The folder holding this build's binaries (`target/debug`): the test executable lives in its
/// `deps/`. `lab` is this crate's own; the others come from `cargo build --workspace --bins`.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_lab"))
        .parent()
        .expect("the lab binary sits in the target folder")
        .to_path_buf()
}

/// A workspace binary, which must have been built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins, as `make test` does)",
        path.display()
    );
    path
}

/// Whether this process runs as root (network namespaces, eBPF and bpffs need it).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port on 127.0.0.1")
        .port()
}
