//! `kubectl-terway_hybrid`: the same CLI as `terway-hybrid`, under the name
//! kubectl looks for on PATH, so that `kubectl terway-hybrid ...` works.
//! (A binary target of its own rather than a second target on
//! `src/bin/terway-hybrid.rs`: Cargo warns about one file in two targets.)

fn main() -> std::process::ExitCode {
    terway_hybrid_controller::cli::main()
}
