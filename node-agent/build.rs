//! Compiles the C datapath in `../ebpf` into a BPF object with clang, so the agent embeds the
//! exact object its ABI mirror was checked against. Needs clang-19 (or `VIGIL_CLANG`) and
//! libbpf headers; `.ci/run` and the README's commands install them.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let ebpf = manifest.join("../ebpf");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("VIGIL_CLANG").unwrap_or_else(|_| "clang-19".to_owned());
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86_64",
        Ok("aarch64") => "aarch64",
        Ok(other) => panic!("unsupported target architecture {other} for the eBPF build"),
        Err(_) => "x86_64",
    };
    for file in ["vigil.bpf.c", "vigil.h"] {
        println!("cargo:rerun-if-changed={}", ebpf.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=VIGIL_CLANG");
    let object = out.join("vigil.bpf.o");
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{arch}-linux-gnu"))
        .arg("-c")
        .arg(ebpf.join("vigil.bpf.c"))
        .arg("-o")
        .arg(&object)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang} to build the eBPF datapath ({e}); install clang-19, llvm-19 and libbpf-dev (apt-get install -y clang-19 llvm-19 libbpf-dev) or set VIGIL_CLANG")
        });
    assert!(
        status.success(),
        "{clang} failed to compile ebpf/vigil.bpf.c"
    );
}
