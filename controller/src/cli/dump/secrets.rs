//! Secrets in a dump: the `<redacted:N>` placeholder `terway-hybrid dump`
//! writes in place of a value, and the reading of a Secret down to which keys
//! hold a value.

use crate::pure::view::SecretKeys;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::Value;
use std::collections::BTreeMap;

/// Reduces a Secret (as a tree) to which keys hold a non-empty value.
///
/// `data` values are base64, or `<redacted:N>` (N bytes) as our own dump
/// writes them; base64 is only checked (decoded, and the bytes dropped unread).
pub(super) fn secret_keys(secret: &Value) -> Result<SecretKeys, String> {
    // Go through SecretKeys::from_secret so the reduction rule stays in one
    // place; the placeholder bytes carry presence only.
    let mut data = BTreeMap::new();
    for (key, value) in string_map(secret, "data")? {
        let non_empty = match value {
            Value::Null => false,
            Value::String(s) => match redacted_len(s) {
                Some(non_empty) => non_empty,
                None => base64_non_empty(s).ok_or_else(|| format!("data.{key}: not valid base64"))?,
            },
            _ => return Err(format!("data.{key}: expected a string")),
        };
        data.insert(key.clone(), ByteString(if non_empty { vec![1] } else { Vec::new() }));
    }
    let mut string_data = BTreeMap::new();
    for (key, value) in string_map(secret, "stringData")? {
        let non_empty = match value {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            _ => return Err(format!("stringData.{key}: expected a string")),
        };
        string_data.insert(key.clone(), if non_empty { "x".to_string() } else { String::new() });
    }
    let placeholder = Secret { data: Some(data), string_data: Some(string_data), ..Secret::default() };
    Ok(SecretKeys::from_secret(&placeholder))
}

fn string_map<'a>(
    secret: &'a Value,
    field: &str,
) -> Result<Box<dyn Iterator<Item = (&'a String, &'a Value)> + 'a>, String> {
    match secret.get(field) {
        None | Some(Value::Null) => Ok(Box::new(std::iter::empty())),
        Some(Value::Object(map)) => Ok(Box::new(map.iter())),
        Some(_) => Err(format!("{field}: expected a map")),
    }
}

/// What `terway-hybrid dump` writes in place of a secret value of `len`
/// bytes; [`redacted_len`] reads it back.
pub(crate) fn redacted(len: usize) -> String {
    format!("<redacted:{len}>")
}

/// [`redacted`]'s `<redacted:N>` -> Some(N > 0); anything else -> None.
fn redacted_len(s: &str) -> Option<bool> {
    let digits = s.strip_prefix("<redacted:")?.strip_suffix('>')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().any(|b| b != b'0'))
}

/// Standard base64, padding optional; low bits left over in the last
/// symbol are let through, as they were before the `base64` crate read these.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Whether `s` is base64 of at least one byte; None if it is not base64.
fn base64_non_empty(s: &str) -> Option<bool> {
    // Padding, when there is some, completes the last group of four: the
    // crate's optional-padding mode would also take `AA=`.
    if s.ends_with('=') && !s.len().is_multiple_of(4) {
        return None;
    }
    // Decoded only to be checked: the bytes are dropped here, unread.
    BASE64.decode(s).ok().map(|bytes| !bytes.is_empty())
}
