use which::which;

/// Rebuild when bpf-linker changes: the object it links depends on it, and
/// cargo cannot see it otherwise.
fn main() {
    match which("bpf-linker") {
        Ok(linker) => println!("cargo:rerun-if-changed={}", linker.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found ({err}); run `cargo xtask setup`"),
    }
}
