// Embeds libtorch's directory as an rpath so `cargo run`/`cargo test` need no LD_LIBRARY_PATH.
// With a CUDA libtorch (one with libtorch_cuda.so, docs/REFERENCE.md "GPU") it also keeps
// libtorch_cuda.so linked: no symbol of ours names it, so a linker defaulting to
// --as-needed would drop it and CUDA would be absent at run time.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=DMLVIZ_LIBTORCH_LIB={lib}");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
            println!("cargo:rustc-env=DMLVIZ_LIBTORCH_CUDA=1");
        }
    }
}
