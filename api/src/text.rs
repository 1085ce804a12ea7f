//! Text from a cluster or a node, made safe for a terminal. Node names,
//! kernel versions, file names, check messages and peers' answers come from
//! places anyone may write to; text output passes each through [`printable`]
//! (JSON and YAML escape them already).

use std::borrow::Cow;
use std::fmt::Write;

/// Whether a terminal would act on `c` instead of showing it: C0 and C1
/// controls (escape sequences, cursor moves, bells), DEL, and the Unicode
/// bidirectional controls that reorder what is shown.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every such character made visible: `\n`, `\r`, `\t`, `\x1b`
/// (below U+0100) or `\u{202e}`. A backslash is left as it is, so text
/// that is already escaped reads the same.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if !is_unsafe(c) => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_become_visible() {
        assert!(matches!(printable("10-calico.conflist"), Cow::Borrowed(_)));
        assert_eq!(printable("日本語 ok"), "日本語 ok");
        assert_eq!(printable("a\u{1b}]0;pwned\u{7}b\n"), "a\\x1b]0;pwned\\x07b\\n");
        assert_eq!(printable("x\u{9b}2Jy\u{7f}"), "x\\x9b2Jy\\x7f");
        assert_eq!(printable("abc\u{202e}fed\u{2066}\u{061c}"), "abc\\u{202e}fed\\u{2066}\\u{61c}");
        assert_eq!(printable("a\\x1b"), "a\\x1b", "an escaped text stays as it is");
        for c in (0..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(!printable(&format!("<{c}>")).chars().any(is_unsafe), "{:x}", c as u32);
        }
    }
}
