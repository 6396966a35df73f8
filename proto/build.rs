//! Compiles `proto/**/*.proto` with protox (pure Rust: no system `protoc` needed) and generates
//! the message types and the tonic service with tonic-prost-build. The encoded descriptor set is
//! written to `OUT_DIR/vigil_descriptor.bin` so that the crate can embed it (JSON mapping, tests).

use prost::Message as _;

const FILES: [&str; 4] = [
    "proto/vigil/vigil.proto",
    "proto/flow/flow.proto",
    "proto/relay/relay.proto",
    "proto/observer/observer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(FILES, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("vigil_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds.clone())?;
    // The same observer service once more, with `GetFlowsResponse` as `raw::Response` (flows kept
    // as their encoded bytes) and every other type taken from the modules generated above: what
    // agents and the relay serve and what the relay reads, so a flow is not decoded and
    // re-encoded at each hop.
    let raw = out.join("raw");
    std::fs::create_dir_all(&raw)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(&raw)
        .extern_path(".flow", "crate::flow")
        .extern_path(".vigil", "crate::vigil")
        .extern_path(".relay", "crate::relay")
        .extern_path(".observer", "crate::observer")
        .extern_path(".observer.GetFlowsResponse", "crate::raw::Response")
        .compile_fds(fds)?;
    Ok(())
}
