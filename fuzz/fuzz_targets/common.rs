//! Shared by the dump targets: the dump loader reads paths, so each input is
//! written to one file in a private temporary directory (`FUZZ_SCRATCH`,
//! on tmpfs under scripts/fuzz) and loaded from there, exactly as `--from-dump FILE`.
#![allow(dead_code)] // each target uses a part
use std::path::PathBuf;
use std::sync::OnceLock;
use terway_hybrid_controller::cli::dump;
use terway_hybrid_controller::pure::plan;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = scratch_base();
        let dir = base.join(format!("terway-hybrid-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("dump")
    })
}

/// FUZZ_SCRATCH (scripts/fuzz makes one on tmpfs per run and removes it),
/// else the temporary directory.
fn scratch_base() -> PathBuf {
    std::env::var_os("FUZZ_SCRATCH").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// Loads `data` as a dump file; when it loads, runs the preflight on it and
/// writes it out again as `terway-hybrid dump` would.
pub fn load(data: &[u8]) {
    let file = scratch();
    std::fs::write(file, data).unwrap();
    let Ok((view, summary)) = dump::load_with_summary(file) else { return };
    assert!(summary.objects() > 0, "a load that read no object must fail");
    let objects = terway_hybrid_controller::cli::dump_cmd::objects(&view, None).unwrap();
    let _ = terway_hybrid_controller::cli::dump_cmd::render(
        &objects,
        terway_hybrid_controller::cli::dump_cmd::DumpFormat::Json,
    );
    let _ = plan::plan(&view, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
}

/// The first byte that is not whitespace (after a UTF-8 byte order mark):
/// what the loader tells JSON from YAML by.
pub fn first_byte(data: &[u8]) -> Option<u8> {
    let body = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}
