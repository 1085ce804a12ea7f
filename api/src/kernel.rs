//! Kernel versions, as Terway's IPvlan mode needs them (docs/contracts.md §12).

/// IPvlan, which Terway uses on cloud nodes, needs this kernel.
pub const MIN_FOR_IPVLAN: (u32, u32) = (4, 19);
/// Newer Terway init containers (and datapathv2) need this kernel.
pub const RECOMMENDED: (u32, u32) = (5, 10);

/// `5.10.134-16.al8.x86_64` -> (5, 10).
pub fn parse(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse("5.10.134-16.al8.x86_64"), Some((5, 10)));
        assert_eq!(parse("4.19.91-26.an8.x86_64"), Some((4, 19)));
        assert_eq!(parse("6.8.0"), Some((6, 8)));
        assert_eq!(parse("3.10.0-1160.el7.x86_64"), Some((3, 10)));
        assert_eq!(parse("4.9+"), Some((4, 9)));
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse(""), None);
    }
}
