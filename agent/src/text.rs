//! Bounds and escapes for strings that come from the node (file names, plugin
//! types, link names, the kernel release, BIRD's answer): pure functions, so
//! a report or a terminal gets a bounded, printable string whatever the node
//! holds.

use std::borrow::Cow;
use std::fmt::Write;

/// A check message or an evidence detail in a report is at most this long
/// (bytes): a list of a thousand stale configs made an 800 KB message.
pub const MAX_MESSAGE: usize = 2048;
/// A list inside a message names at most this many items, then says how many more.
pub const MAX_LISTED: usize = 8;
/// A string taken from a CNI config (network name, plugin type) is at most this long.
pub const MAX_CONFIG_STRING: usize = 128;

/// `s` cut to at most `max` bytes on a character boundary, with what was cut
/// said at the end (the result may exceed `max` by that note, under 40 bytes).
pub fn bounded(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} more bytes)", &s[..end], s.len() - end))
}

/// `items` joined with `sep`, the first [`MAX_LISTED`] of them, then "and N more".
pub fn listed<S: AsRef<str>>(items: &[S], sep: &str) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().take(MAX_LISTED).enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(item.as_ref());
    }
    if items.len() > MAX_LISTED {
        let _ = write!(out, "{sep}and {} more", items.len() - MAX_LISTED);
    }
    out
}

/// One rule for agent and CLI alike.
pub use terway_hybrid_api::text::printable;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a terminal would act on (the rule of `printable`, restated).
    fn is_unsafe(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }

    #[test]
    fn examples() {
        assert_eq!(printable("10-calico.conflist"), "10-calico.conflist");
        assert_eq!(printable("a\u{1b}]0;pwned\u{7}b\n"), "a\\x1b]0;pwned\\x07b\\n");
        assert_eq!(printable("x\u{9b}2Jy\u{202e}z"), "x\\x9b2Jy\\u{202e}z");
        assert_eq!(bounded("héllo", 2), "h… (5 more bytes)");
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(listed(&["a", "b"], ", "), "a, b");
        let many: Vec<String> = (0..10_000).map(|i| format!("{i:05}.conflist")).collect();
        assert_eq!(listed(&many, "; ").matches("; ").count(), MAX_LISTED);
        assert!(listed(&many, "; ").ends_with("; and 9992 more"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Nothing a terminal acts on survives, and nothing printable is lost:
        /// undoing the escapes of the control characters gives `s` back.
        #[test]
        fn printable_escapes_exactly_the_controls(s in "(\\PC|\\p{Cc}|[\u{202a}-\u{202e}\u{2066}-\u{2069}]){0,200}") {
            let shown = printable(&s);
            prop_assert!(!shown.chars().any(is_unsafe), "{shown:?}");
            let mut back = String::new();
            let mut rest: &str = &shown;
            while let Some(c) = rest.chars().next() {
                let take = |p: &str| rest.strip_prefix(p);
                if let Some(r) = take("\\n") { back.push('\n'); rest = r; continue; }
                if let Some(r) = take("\\r") { back.push('\r'); rest = r; continue; }
                if let Some(r) = take("\\t") { back.push('\t'); rest = r; continue; }
                if let Some(r) = take("\\x") {
                    if let Some(ch) = r.get(..2).and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32).filter(|&ch| is_unsafe(ch)) {
                        back.push(ch); rest = &r[2..]; continue;
                    }
                }
                if let Some(r) = take("\\u{") {
                    if let Some((hex, after)) = r.split_once('}') {
                        if let Some(ch) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).filter(|&ch| is_unsafe(ch)) {
                            back.push(ch); rest = after; continue;
                        }
                    }
                }
                back.push(c);
                rest = &rest[c.len_utf8()..];
            }
            // Ambiguous only when `s` itself held a backslash escape.
            if !s.contains('\\') {
                prop_assert_eq!(back, s);
            }
        }

        /// Bounded: at most `max` bytes of `s`, a prefix of it, plus the note.
        #[test]
        fn bounded_is_a_prefix_within_the_cap(s in "\\PC{0,300}", max in 0usize..300) {
            let b = bounded(&s, max);
            prop_assert!(b.len() <= max + 40, "{} > {}", b.len(), max);
            let kept = b.split("… (").next().unwrap();
            prop_assert!(s.starts_with(kept));
            prop_assert_eq!(b == s, s.len() <= max);
        }
    }
}
