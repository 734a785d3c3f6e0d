//! Compiles every `.proto` under `proto/proto/` with `protox` (pure Rust, so no `protoc` needs to
//! be installed) and generates prost messages plus tonic clients and servers.

use std::path::{Path, PathBuf};

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_protos(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from("proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect_protos(&root, &mut files);
    let fds = protox::compile(&files, [&root]).expect("compiling .proto files");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // The encoded descriptor set feeds gRPC server reflection.
    std::fs::write(
        out_dir.join("proglog_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )
    .expect("writing descriptor set");

    tonic_prost_build::configure()
        .bytes(".")
        .compile_fds(fds)
        .expect("generating Rust code from descriptors");
}
