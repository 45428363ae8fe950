//! The `nokv` binary: everything lives in the library so tests can drive the same code.

fn main() -> std::process::ExitCode {
    nokv::install_panic_hook();
    nokv::run(std::env::args_os())
}
