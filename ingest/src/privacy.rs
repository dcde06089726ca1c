//! Masking personal data in what culla stores about rejected messages.
//!
//! The contract keeps raw bytes of a bad message in the dead-letter store so it can be
//! fixed and replayed. A message rejected because it carries a phone number or an
//! e-mail address is the exception: culla never stores raw personal data, so the
//! offending runs are masked (digits become `X`, an e-mail address becomes
//! `[e-mail]`) and the row is marked `redacted`. The same scan runs on every dead letter,
//! whatever its reason, because a message rejected for a syntax error can carry a phone
//! number too. Redacted rows are not replayed: their bytes are no longer the original.

/// Masks phone-number-like runs and e-mail addresses in `raw`; `None` when nothing was found.
pub fn mask(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = raw.to_vec();
    let mut changed = mask_phones(&mut out);
    if let Some(masked) = mask_emails(&out) {
        out = masked;
        changed = true;
    }
    changed.then_some(out)
}

/// Masks every digit: the fallback when a message was rejected for personal data but
/// the scan could not point at it.
pub fn mask_all_digits(raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .map(|&b| if b.is_ascii_digit() { b'X' } else { b })
        .collect()
}

fn is_sep(b: u8) -> bool {
    b" .-/()+".contains(&b)
}

/// Whether the run starting at `i` continues an identifier (`n-2024…`, `id42…`).
fn glued_before(b: &[u8], i: usize) -> bool {
    let mut k = i;
    while k > 0 && b"-_./".contains(&b[k - 1]) {
        k -= 1;
    }
    if k < i {
        k > 0 && b[k - 1].is_ascii_alphabetic()
    } else {
        i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
    }
}

fn glued_after(b: &[u8], last: usize) -> bool {
    let mut k = last + 1;
    while k < b.len() && b"-_./".contains(&b[k]) {
        k += 1;
    }
    if k > last + 1 {
        k < b.len() && b[k].is_ascii_alphabetic()
    } else {
        k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'_')
    }
}

/// Runs of digits and separators holding 9–15 digits, not glued to an identifier:
/// the rule `culla-schemas` uses to reject phone numbers.
fn mask_phones(b: &mut [u8]) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() || ((b[i] == b'+' || b[i] == b'(') && i + 1 < b.len());
        if !starts || glued_before(b, i) {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut digits = 0;
        let mut last_digit = i;
        while j < b.len() && (b[j].is_ascii_digit() || is_sep(b[j])) {
            if b[j].is_ascii_digit() {
                digits += 1;
                last_digit = j;
            }
            j += 1;
        }
        if (9..=15).contains(&digits) && !glued_after(b, last_digit) && !is_date_or_uuid(b, i, j) {
            for c in &mut b[i..=last_digit] {
                if c.is_ascii_digit() {
                    *c = b'X';
                }
            }
            changed = true;
        }
        i = j.max(i + 1);
    }
    changed
}

/// A run that starts with a date (`2024-03-05 09:12`) is a time stamp, not a phone number.
fn is_date_or_uuid(b: &[u8], i: usize, j: usize) -> bool {
    let run = &b[i..j];
    run.len() >= 10
        && std::str::from_utf8(&run[..10])
            .ok()
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .is_some()
}

fn is_email_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+')
}

fn mask_emails(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut copied = 0;
    for (i, &c) in b.iter().enumerate() {
        if c != b'@' || i == 0 || i < copied || !is_email_char(b[i - 1]) {
            continue;
        }
        let mut start = i;
        while start > copied && is_email_char(b[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'.' || b[end] == b'-')
        {
            end += 1;
        }
        let domain = &b[i + 1..end];
        let dot = domain.iter().rposition(|&d| d == b'.');
        if matches!(dot, Some(p) if p > 0 && domain.len() - p > 2) {
            out.extend_from_slice(&b[copied..start]);
            out.extend_from_slice(b"[e-mail]");
            copied = end;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(&b[copied..]);
    Some(out)
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
        let clean = r#"{"event_id":"0b7e3c1e-8f0a-4e4b-9a51-2f4f6c8d9e10","at":"2024-03-05T09:12:44+01:00","family":"a1b2c3d4e5f60718","contact_id":"c-2024-0042"}"#;
        assert_eq!(m(clean), None);
    }
}
