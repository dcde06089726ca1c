//! The one personal-data detector: phone numbers, e-mail addresses, codici fiscali and
//! IBANs, in strings and in JSON numbers (contract revision 1.1).
//!
//! Validation rejects an event in which [`find`] or [`number_is_phone`] finds anything
//! (outside `event_id`, `at`, `for_date` and `family`), and the dead-letter store masks
//! exactly the spans [`find`] reports ([`mask`]): what is rejected is what is masked.
//!
//! A phone number is a run of nine or more digits that may hold spaces, dots, dashes,
//! slashes, parentheses and a leading `+`, glued to letters or not (`tel.3331234567`,
//! `cell3331234567`). An identifier — a token that starts with a letter and holds only
//! letters, digits and `. _ : -`, like `mi-2024-010135` — is a phone number only when it
//! holds nine or more digits in a row; a UUID and a run that starts with a date
//! (`2024-03-05 09:12`) never are. A JSON number is a phone number when its integer part
//! has nine or more digits, negative or with a fraction (`-3331234567`,
//! `3331234567.0`). An e-mail address is `local@domain.tld`; a codice fiscale is the
//! 16-character pattern of the Agenzia delle Entrate, either case, as a token of its own;
//! an IBAN is two letters, two check digits and 11–30 letters or digits (spaces allowed
//! between groups) whose ISO 13616 check (mod 97) holds.

use std::ops::Range;

/// What a span of personal data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A phone number.
    Phone,
    /// An e-mail address.
    Email,
    /// An Italian codice fiscale.
    CodiceFiscale,
    /// An IBAN.
    Iban,
}

impl Kind {
    /// How a message names it: "a phone number", …
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Phone => "a phone number",
            Kind::Email => "an e-mail address",
            Kind::CodiceFiscale => "a codice fiscale",
            Kind::Iban => "an IBAN",
        }
    }
}

/// Every span of personal data in `b` (bytes of a string value, or of a whole message),
/// in order, not overlapping.
pub fn find(b: &[u8]) -> Vec<(Range<usize>, Kind)> {
    // Most strings of an event are short codes: with fewer than nine digits, no `@` and
    // under 15 bytes nothing can match, and validation asks for every string value.
    if b.len() < 15 && !b.contains(&b'@') && b.iter().filter(|c| c.is_ascii_digit()).count() < 9 {
        return Vec::new();
    }
    let mut out: Vec<(Range<usize>, Kind)> = Vec::new();
    out.extend(emails(b).into_iter().map(|r| (r, Kind::Email)));
    out.extend(ibans(b).into_iter().map(|r| (r, Kind::Iban)));
    out.extend(
        codici_fiscali(b)
            .into_iter()
            .map(|r| (r, Kind::CodiceFiscale)),
    );
    out.extend(phones(b).into_iter().map(|r| (r, Kind::Phone)));
    out.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut merged: Vec<(Range<usize>, Kind)> = Vec::new();
    for (r, k) in out {
        match merged.last_mut() {
            Some((last, _)) if r.start < last.end => last.end = last.end.max(r.end),
            _ => merged.push((r, k)),
        }
    }
    merged
}

/// The first kind of personal data in `s`, if any.
pub fn first_in(s: &str) -> Option<Kind> {
    find(s.as_bytes()).first().map(|(_, k)| *k)
}

/// Whether a JSON number (its text, e.g. `-3331234567.0`) is a phone number in disguise:
/// nine or more digits before any fraction or exponent.
pub fn number_is_phone(text: &str) -> bool {
    let t = text.trim_start_matches(['-', '+']);
    let int = t.split(['.', 'e', 'E']).next().unwrap_or("");
    int.trim_start_matches('0').len() >= 9
}

/// `b` with every span of personal data masked (letters and digits become `X`, an
/// e-mail address `[e-mail]`); `None` when there is none.
pub fn mask(b: &[u8]) -> Option<Vec<u8>> {
    let found = find(b);
    if found.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut at = 0;
    for (r, k) in found {
        out.extend_from_slice(&b[at..r.start]);
        if k == Kind::Email {
            out.extend_from_slice(b"[e-mail]");
        } else {
            out.extend(b[r.clone()].iter().map(
                |&c| {
                    if c.is_ascii_alphanumeric() { b'X' } else { c }
                },
            ));
        }
        at = r.end;
    }
    out.extend_from_slice(&b[at..]);
    Some(out)
}

fn is_code_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._:-".contains(&c)
}

/// The identifier-shaped token around `i` (letters, digits and `. _ : -`), as a range.
fn token_at(b: &[u8], i: usize) -> Range<usize> {
    let mut s = i;
    while s > 0 && is_code_char(b[s - 1]) {
        s -= 1;
    }
    let mut e = i;
    while e < b.len() && is_code_char(b[e]) {
        e += 1;
    }
    s..e
}

fn is_uuid(t: &[u8]) -> bool {
    t.len() == 36
        && t.iter().enumerate().all(|(i, &c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn starts_with_date(t: &[u8]) -> bool {
    t.len() >= 10
        && std::str::from_utf8(&t[..10])
            .ok()
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .is_some()
}

fn phones(b: &[u8]) -> Vec<Range<usize>> {
    let is_sep = |c: u8| b" .-/()".contains(&c);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() || (b"+(".contains(&b[i]) && i + 1 < b.len());
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut digits = usize::from(b[i].is_ascii_digit());
        let mut longest = digits;
        let mut row = digits;
        let mut last = i;
        while j < b.len() && (b[j].is_ascii_digit() || is_sep(b[j])) {
            if b[j].is_ascii_digit() {
                digits += 1;
                row += 1;
                longest = longest.max(row);
                last = j;
            } else {
                row = 0;
            }
            j += 1;
        }
        if digits >= 9 {
            let token = token_at(b, i);
            let tok = &b[token.clone()];
            let identifier = tok.first().is_some_and(u8::is_ascii_alphabetic)
                && token.start < i
                && token.end > last;
            let exempt = is_uuid(tok) || starts_with_date(&b[i..j]) || (identifier && longest < 9);
            if !exempt {
                out.push(i..last + 1);
            }
        }
        i = j.max(i + 1);
    }
    out
}

fn is_email_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+')
}

fn emails(b: &[u8]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if c != b'@' || i == 0 || !is_email_char(b[i - 1]) {
            continue;
        }
        if out.last().is_some_and(|r| r.end > i) {
            continue;
        }
        let mut start = i;
        while start > 0 && is_email_char(b[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b".-".contains(&b[end])) {
            end += 1;
        }
        let domain = &b[i + 1..end];
        let dot = domain.iter().rposition(|&d| d == b'.');
        if matches!(dot, Some(p) if p > 0 && domain.len() - p > 2) {
            out.push(start..end);
        }
    }
    out
}

/// Positions of a codice fiscale: letters at 0–5, 8, 11, 15; digits (or their
/// omocodia letters) elsewhere.
fn codici_fiscali(b: &[u8]) -> Vec<Range<usize>> {
    const LETTER: [bool; 16] = [
        true, true, true, true, true, true, false, false, true, false, false, true, false, false,
        false, true,
    ];
    let omocodia = |c: u8| c.is_ascii_digit() || b"LMNPQRSTUV".contains(&c.to_ascii_uppercase());
    let mut out = Vec::new();
    if b.len() < 16 {
        return out;
    }
    for i in 0..=b.len() - 16 {
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        if b.get(i + 16).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let w = &b[i..i + 16];
        let ok = w.iter().zip(LETTER).all(|(&c, letter)| {
            if letter {
                c.is_ascii_alphabetic()
            } else {
                omocodia(c)
            }
        });
        if ok {
            out.push(i..i + 16);
        }
    }
    out
}

fn ibans(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let head = b[i].is_ascii_alphabetic()
            && b[i + 1].is_ascii_alphabetic()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !head {
            i += 1;
            continue;
        }
        let mut chars: Vec<u8> = Vec::with_capacity(34);
        let mut j = i;
        let mut end = i;
        while j < b.len() && chars.len() < 34 {
            if b[j].is_ascii_alphanumeric() {
                chars.push(b[j].to_ascii_uppercase());
                end = j + 1;
            } else if b[j] == b' ' && j + 1 < b.len() && b[j + 1].is_ascii_alphanumeric() {
                // a space between groups
            } else {
                break;
            }
            j += 1;
        }
        if (15..=34).contains(&chars.len()) && iban_check(&chars) {
            out.push(i..end);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// ISO 13616: the country and check digits moved to the end, letters as 10–35, mod 97 = 1.
fn iban_check(chars: &[u8]) -> bool {
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<Kind> {
        first_in(s)
    }

    #[test]
    fn phones_in_every_shape_of_revision_1_1() {
        for s in [
            "3331234567",
            "+39 333 123 4567",
            "tel.3331234567",
            "cell3331234567",
            "333/123.45-67",
            "(02) 8845 6789",
            "chiamare 3331234567 dopo le 18",
            "1234567890123456",
            "-3331234567",
        ] {
            assert_eq!(kind(s), Some(Kind::Phone), "{s}");
        }
        for s in [
            "mi-2024-010135",
            "550e8400-e29b-41d4-a716-446655440000",
            "2024-03-05 09:12",
            "servizio-sociale-municipio-3",
            "02.02.02",
            "op-07",
            "12345678",
        ] {
            assert_eq!(kind(s), None, "{s}");
        }
        assert!(number_is_phone("3331234567"));
        assert!(number_is_phone("-3331234567"));
        assert!(number_is_phone("3331234567.0"));
        assert!(!number_is_phone("3.331234567e9"));
        assert!(!number_is_phone("86400"));
        assert!(!number_is_phone("12.5"));
    }

    #[test]
    fn e_mails_codici_fiscali_and_ibans() {
        assert_eq!(
            kind("scrivere a mario.rossi@example.com"),
            Some(Kind::Email)
        );
        assert_eq!(kind("RSSMRA80A01F205X"), Some(Kind::CodiceFiscale));
        assert_eq!(kind("cf rssmra80a01f205x."), Some(Kind::CodiceFiscale));
        assert_eq!(kind("IT60X0542811101000000123456"), Some(Kind::Iban));
        assert_eq!(kind("IT60 X054 2811 1010 0000 0123 456"), Some(Kind::Iban));
        // A check digit off: not an IBAN (and no nine digits in a row).
        assert_eq!(kind("IT61X05428A1101B00000C123456"), None);
        assert_eq!(kind("referral-2024-000123-r"), None);
    }

    #[test]
    fn masking_covers_exactly_what_is_found() {
        let raw = br#"{"note":"Maria tel.3331234567, mail m.r@example.it, cf RSSMRA80A01F205X","n":-3331234567.0,"contact_id":"mi-2024-010135"}"#;
        let masked = String::from_utf8(mask(raw).unwrap()).unwrap();
        assert_eq!(
            masked,
            r#"{"note":"Maria tel.XXXXXXXXXX, mail [e-mail], cf XXXXXXXXXXXXXXXX","n":-XXXXXXXXXX.X,"contact_id":"mi-2024-010135"}"#
        );
        assert_eq!(find(&mask(raw).unwrap()), Vec::new());
        assert_eq!(mask(br#"{"contact_id":"mi-2024-010135"}"#), None);
    }
}
