//! `readinessTimeout` (`10m`, `90s`, `1h30m`) as the controller reads it from
//! the TerwayRollout and the CLI from its flags. Properties: what parses is
//! not negative, and the CLI's own spelling of it (`human_duration`) parses
//! back to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use terway_hybrid_controller::cli::{human_duration, parse_duration as cli_parse};
use terway_hybrid_controller::pure::plan::parse_duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = parse_duration(text);
    let cli = cli_parse(text);
    if let Some(d) = parsed {
        assert!(!d.is_negative(), "{text:?} parses to a negative duration {d:?}");
        let secs = u64::try_from(d.as_secs()).unwrap();
        assert_eq!(
            cli.as_ref().ok(),
            Some(&Duration::from_secs(secs)),
            "the CLI and the controller disagree"
        );
        let spelled = human_duration(Duration::from_secs(secs));
        assert_eq!(parse_duration(&spelled), Some(d), "{spelled:?} does not parse back");
    } else {
        assert!(cli.is_err());
    }
});
