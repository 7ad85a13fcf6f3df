//! The email policy: which addresses a mail system will take, checked without I/O.
//!
//! We accept what RFC 5321/6531 mail transfer agents deliver in practice and refuse the
//! rest, each refusal with a reason a person can act on:
//!
//! - local part: a dot-atom of RFC 5322 `atext` plus any non-ASCII character (RFC 6531),
//!   at most 64 octets (RFC 5321 §4.5.3.1.1). Quoted local parts are refused: they are
//!   legal, but almost no mailbox provider, form or ESP accepts them, and a stored one is
//!   an input error far more often than an address;
//! - domain: a host name, never an IP literal. UTS 46 (IDNA) maps it to ASCII with the
//!   STD3 letter-digit-hyphen rule, CheckHyphens, CheckBidi, CheckJoiners and the DNS
//!   lengths (labels ≤ 63, name ≤ 253 octets); at least two labels; the top-level label
//!   is letters or an A-label (RFC 1123 §2.1 and the root zone's rule for every TLD);
//!   the special-use names that are never delegated in the public DNS are refused;
//! - the whole: at most 254 octets with the domain in ASCII (RFC 5321's 256-octet path
//!   minus its angle brackets);
//! - characters that change how surrounding text renders or are not text at all are
//!   refused anywhere: controls (NUL, CR, LF, TAB...), spaces and separators, format
//!   characters (bidi overrides, zero-width space...), private-use and noncharacters, and
//!   a combining mark at the start of the local part (it would merge with what precedes).
//!
//! Surrounding ASCII/Unicode spaces are tolerated (trimmed) as before: forms and CSV
//! exports add them, and the lookup key is trimmed too. Line breaks are not trimmed but
//! refused: a value with one came from a broken import, not from a person.
//!
//! `email_address` 0.2.9 is no longer used here: its test for UTF8-non-ascii looks at a
//! code point's scalar bytes instead of its UTF-8 encoding, so it refuses e.g. every
//! Devanagari word with a virama, and its domain rule admits `atext` such as `/` in labels.

use std::fmt;

use compact_str::CompactString;
use idna::AsciiDenyList;
use idna::uts46::{DnsLength, Hyphens, Uts46};

/// RFC 5321 §4.5.3.1.1.
const LOCAL_MAX: usize = 64;
/// RFC 5321 §4.5.3.1.3: a 256-octet path less `<` and `>`.
const ADDRESS_MAX: usize = 254;

/// Top-level names never delegated in the public DNS, so no mailbox under them is
/// reachable from the internet: RFC 6761 (`invalid`, `localhost`, `test`), RFC 6762
/// (`local`, multicast DNS only), RFC 7686 (`onion`, Tor only) and `arpa`
/// (infrastructure). The `example` names of RFC 2606 stay valid: documentation and tests
/// use them, and the reference validators accept them.
const SPECIAL_USE: &[&str] = &["arpa", "invalid", "local", "localhost", "onion", "test"];

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EmailError {
    Empty,
    Unsafe(char),
    DisplayName,
    NoAt,
    LocalEmpty,
    LocalTooLong(usize),
    Quoted,
    LocalDots,
    LocalChar(char),
    LeadingMark(char),
    DomainEmpty,
    DomainLiteral,
    Idna,
    NoDot,
    Tld,
    SpecialUse(String),
    TooLong(usize),
}

impl fmt::Display for EmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EmailError as E;
        match self {
            E::Empty => f.write_str("the address is empty"),
            E::Unsafe(c) => write!(
                f,
                "the address contains U+{:04X}, a control, space, format, private-use or \
                 noncharacter code point",
                *c as u32
            ),
            E::DisplayName => {
                f.write_str("a display name or angle brackets are not part of an address")
            }
            E::NoAt => f.write_str("the address has no @"),
            E::LocalEmpty => f.write_str("nothing before the @"),
            E::LocalTooLong(n) => write!(
                f,
                "the part before the @ is {n} octets long; at most {LOCAL_MAX} (RFC 5321)"
            ),
            E::Quoted => f.write_str(
                "a quoted part before the @ is not accepted by mail providers; \
                 the address is probably mistyped",
            ),
            E::LocalDots => {
                f.write_str("the part before the @ starts or ends with a dot or has two in a row")
            }
            E::LocalChar(c) => write!(f, "`{c}` is not allowed before the @"),
            E::LeadingMark(c) => write!(
                f,
                "the address starts with the combining mark U+{:04X}",
                *c as u32
            ),
            E::DomainEmpty => f.write_str("nothing after the @"),
            E::DomainLiteral => f.write_str("IP-address domains are not accepted"),
            E::Idna => f.write_str(
                "the part after the @ is not a valid host name (letters, digits and \
                 hyphens in labels of at most 63 octets, IDNA for other scripts)",
            ),
            E::NoDot => f.write_str("the part after the @ needs a dot"),
            E::Tld => f.write_str("the part after the @ does not end in a valid top-level domain"),
            E::SpecialUse(tld) => write!(
                f,
                "`.{tld}` is a special-use name that cannot receive mail on the internet"
            ),
            E::TooLong(n) => write!(
                f,
                "the address is {n} octets long with its domain in ASCII; at most {ADDRESS_MAX}"
            ),
        }
    }
}

/// Checks an address; on success, its lookup key: what `normalize_email` makes of it,
/// built from the ASCII domain the check already computed.
pub(super) fn check(raw: &str) -> Result<CompactString, EmailError> {
    // ASCII (nearly every address) is scanned as bytes: its controls are the ASCII ones.
    let control = if raw.is_ascii() {
        raw.bytes().find(u8::is_ascii_control).map(char::from)
    } else {
        raw.chars().find(|c| c.is_control())
    };
    if let Some(c) = control {
        return Err(EmailError::Unsafe(c));
    }
    let s = raw.trim();
    if s.is_empty() {
        return Err(EmailError::Empty);
    }
    if s.ends_with('>') && s.contains('<') {
        return Err(EmailError::DisplayName);
    }
    let (local, domain) = s.rsplit_once('@').ok_or(EmailError::NoAt)?;
    check_local(local)?;
    let ascii = check_domain(domain)?;
    let len = local.len() + 1 + ascii.len();
    if len > ADDRESS_MAX {
        return Err(EmailError::TooLong(len));
    }
    let mut key = CompactString::with_capacity(len);
    if local.is_ascii() {
        key.push_str(local);
        key.as_mut_str().make_ascii_lowercase();
    } else {
        // `str::to_lowercase`, not per character: a word-final Σ becomes ς.
        key.push_str(&local.to_lowercase());
    }
    key.push('@');
    key.push_str(&ascii);
    Ok(key)
}

fn check_local(local: &str) -> Result<(), EmailError> {
    if local.is_empty() {
        return Err(EmailError::LocalEmpty);
    }
    if local.starts_with('"') {
        return Err(EmailError::Quoted);
    }
    if local.len() > LOCAL_MAX {
        return Err(EmailError::LocalTooLong(local.len()));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(EmailError::LocalDots);
    }
    for c in local.chars() {
        if c.is_ascii() {
            if !(c == '.' || is_atext(c)) {
                return Err(EmailError::LocalChar(c));
            }
        } else if is_unsafe(c) {
            return Err(EmailError::Unsafe(c));
        } else if ascii_equivalent(c).is_some_and(|a| !is_atext(a)) {
            return Err(EmailError::LocalChar(c));
        }
    }
    let first = local.chars().next().unwrap_or('a');
    if !first.is_ascii() && !first.is_alphanumeric() && starts_with_mark(first) {
        return Err(EmailError::LeadingMark(first));
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<String, EmailError> {
    if domain.is_empty() {
        return Err(EmailError::DomainEmpty);
    }
    if domain.starts_with('[') {
        return Err(EmailError::DomainLiteral);
    }
    if let Some(c) = domain.chars().find(|c| !c.is_ascii() && is_unsafe(*c)) {
        return Err(EmailError::Unsafe(c));
    }
    let ascii = Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .map_err(|_| EmailError::Idna)?;
    // UTS 46 maps a few compatibility characters to text with a dot in it (`⒈` → `1.`):
    // the address would then name a different host than the one written.
    let separators = domain
        .chars()
        .filter(|c| matches!(c, '.' | '\u{3002}' | '\u{FF0E}' | '\u{FF61}'))
        .count();
    if ascii.bytes().filter(|b| *b == b'.').count() != separators {
        return Err(EmailError::Idna);
    }
    let Some((_, tld)) = ascii.rsplit_once('.') else {
        return Err(EmailError::NoDot);
    };
    if !(tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--")) {
        return Err(EmailError::Tld);
    }
    if SPECIAL_USE.contains(&tld) {
        return Err(EmailError::SpecialUse(tld.to_owned()));
    }
    Ok(ascii.into_owned())
}

/// RFC 5322 `atext` (ASCII): a byte test, where a search of the specials as a `str`
/// was a visible part of an import's email checks.
fn is_atext(c: char) -> bool {
    u8::try_from(c).is_ok_and(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
}

/// Non-ASCII code points that are not text: whitespace and separators (Zs, Zl, Zp),
/// format characters (Cf), private use (Co) and noncharacters. Controls are refused
/// before (Cc). std has no general-category data, so Cf is listed (Unicode 15.1, all
/// 170 of them); unassigned code points other than noncharacters are not detected.
fn is_unsafe(c: char) -> bool {
    const FORMAT: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let u = c as u32;
    c.is_whitespace()
        || c.is_control()
        || FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
        || (0xE000..=0xF8FF).contains(&u)
        || u >= 0xF0000 && (u & 0xFFFF) <= 0xFFFD
        || (0xFDD0..=0xFDEF).contains(&u)
        || (u & 0xFFFE) == 0xFFFE
}

/// The ASCII character `c` is canonically equivalent to, if any: NFC (which RFC 6532
/// asks mail systems to apply) turns these into ASCII, so they must pass the ASCII rules.
/// These three are all the non-ASCII code points with an ASCII canonical decomposition.
fn ascii_equivalent(c: char) -> Option<char> {
    match c {
        '\u{037E}' => Some(';'),
        '\u{1FEF}' => Some('`'),
        '\u{212A}' => Some('K'),
        _ => None,
    }
}

/// Whether `c` is a combining mark (General_Category M). std has no category data;
/// UTS 46 refuses a label that begins with one, so we ask it about `c` alone (it also
/// refuses the few code points IDNA disallows outright, which is no loss at the start of
/// an address). Only called for non-alphanumeric non-ASCII characters, rare in addresses.
fn starts_with_mark(c: char) -> bool {
    let mut buf = [0; 4];
    Uts46::new()
        .to_ascii(
            c.encode_utf8(&mut buf).as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .is_err()
}
