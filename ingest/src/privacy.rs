//! Masking personal data in what culla stores about rejected messages.
//!
//! The contract keeps raw bytes of a bad message in the dead-letter store so it can be
//! fixed and replayed. Personal data is the exception: culla never stores it, so every
//! span the contract's one detector finds ([`culla_schemas::personal`]: phone numbers,
//! e-mail addresses, codici fiscali, IBANs — the spans validation rejects) is masked
//! (letters and digits become `X`, an e-mail address `[e-mail]`) and the row is marked
//! `redacted`. The same scan runs on every dead letter, whatever its reason, because a
//! message rejected for a syntax error can carry a phone number too. Redacted rows are
//! not replayed: their bytes are no longer the original.

/// Masks every span of personal data in `raw`; `None` when nothing was found.
pub fn mask(raw: &[u8]) -> Option<Vec<u8>> {
    culla_schemas::personal::mask(raw)
}

/// Whether a string is a code, an identifier, a timestamp or an enumeration value
/// rather than free text: letters, digits and `. _ : + - /` only.
fn is_code_like(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"._:+-/".contains(&c))
}

/// A rejection's message with every quoted value that is free text replaced by
/// `"[text]"` (a message quotes the value it refused, e.g. `is "…", not one of in, out`).
pub fn mask_quoted_free_text(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        // The closing quote: the first one not escaped by a backslash.
        let mut close = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    close = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(close) = close else {
            out.push_str(after);
            return out;
        };
        let inner = &after[..close];
        out.push_str(if is_code_like(inner) { inner } else { "[text]" });
        out.push('"');
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// In a message that is a JSON object, every string value that is free text rather than
/// a code, an identifier, a timestamp or an enumeration value (anything holding a
/// character other than letters, digits and `. _ : + - /`, a space above all) becomes
/// `"[text]"`; keys, numbers, booleans and codes stay, so the reason for the rejection
/// can still be seen (contract 1.1). A message that is not JSON (broken, or cut to its
/// first KiB) has its quoted strings masked the same way ([`mask_quoted_free_text`]).
/// `None` when nothing was masked.
pub fn mask_free_text(raw: &[u8]) -> Option<Vec<u8>> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(raw) else {
        // Not JSON (cut short, or broken): the quoted strings of its text, if any.
        let text = std::str::from_utf8(raw).ok()?;
        let masked = mask_quoted_free_text(text);
        return (masked != text).then(|| masked.into_bytes());
    };
    if !v.is_object() {
        return None;
    }
    fn walk(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => {
                let code = is_code_like(s);
                if !code {
                    *s = "[text]".to_string();
                }
                !code
            }
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, i| walk(i) | c),
            serde_json::Value::Object(m) => m.values_mut().fold(false, |c, i| walk(i) | c),
            _ => false,
        }
    }
    walk(&mut v).then(|| v.to_string().into_bytes())
}

/// Masks every digit: the fallback when a message was rejected for personal data but
/// the scan could not point at it.
pub fn mask_all_digits(raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .map(|&b| if b.is_ascii_digit() { b'X' } else { b })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Option<String> {
        mask(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn phones_and_emails_are_masked_ids_and_dates_are_not() {
        assert_eq!(
            m(r#"{"operator":"+39 02 8845 6789","x":1}"#).unwrap(),
            r#"{"operator":"+XX XX XXXX XXXX","x":1}"#
        );
        assert_eq!(
            m(r#"{"note":"mario.rossi@example.com ok"}"#).unwrap(),
            r#"{"note":"[e-mail] ok"}"#
        );
        assert_eq!(m(r#"{"n":3331234567}"#).unwrap(), r#"{"n":XXXXXXXXXX}"#);
        assert_eq!(
            m(r#"{"family":"RSSMRA80A01F205X"}"#).unwrap(),
            r#"{"family":"XXXXXXXXXXXXXXXX"}"#
        );
        let clean = r#"{"event_id":"0b7e3c1e-8f0a-4e4b-9a51-2f4f6c8d9e10","at":"2024-03-05T09:12:44+01:00","family":"a1b2c3d4e5f60718","contact_id":"c-2024-0042"}"#;
        assert_eq!(m(clean), None);
        assert_eq!(mask_free_text(clean.as_bytes()), None);
        let text = r#"{"type":"chat.message","note":"Maria, via Padova","tags":["ok","ciao a tutti"],"v":"one"}"#;
        assert_eq!(
            String::from_utf8(mask_free_text(text.as_bytes()).unwrap()).unwrap(),
            r#"{"type":"chat.message","note":"[text]","tags":["ok","[text]"],"v":"one"}"#
        );
        assert_eq!(mask_free_text(b"not json at all"), None);
        assert_eq!(
            mask_free_text(br#"{"note": "Maria Rossi", "v": 1"#).unwrap(),
            br#"{"note": "[text]", "v": 1"#
        );
        assert_eq!(
            mask_quoted_free_text(r#"field "direction" is "Maria Rossi", not one of in, out"#),
            r#"field "direction" is "[text]", not one of in, out"#
        );
        assert_eq!(
            mask_quoted_free_text(r#"field "at" is not a timestamp: "a \"b\" c""#),
            r#"field "at" is not a timestamp: "[text]""#
        );
    }
}
