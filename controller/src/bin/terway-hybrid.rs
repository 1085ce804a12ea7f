//! `terway-hybrid`: the operator's CLI. See `--help`, and
//! [`terway_hybrid_controller::cli`] for the commands.

fn main() -> std::process::ExitCode {
    terway_hybrid_controller::cli::main()
}
