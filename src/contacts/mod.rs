//! Contact values: email and phone validation and the normalized forms used as keys.
//!
//! Called by `schema::update` when a write carries `email` or `phone`, by `db::apply` to
//! key them, and by `schema::database` for the sender addresses. Pure functions, no I/O;
//! the phone patterns are compiled once per country code and shared by all threads.
//!
//! Emails follow the policy in `email` (RFC 5321/6531 shapes that mail systems accept; no
//! quoted local parts, IP literals, control or invisible characters, special-use domains)
//! and are keyed by lowercasing the whole address and writing the domain in its IDNA
//! (punycode) form. Phones are parsed with libphonenumber metadata (`phonenumber`), using
//! the database's default region for numbers without a country code, classified by
//! libphonenumber's rules (`phone`) and keyed by E.164.

mod email;
mod pattern;
mod phone;

use std::str::FromStr;

use compact_str::CompactString;
use phonenumber::Type as PhoneNumberType;

/// Checks an email address; the error is a reason a person can read.
pub fn check_email(raw: &str) -> Result<(), String> {
    email::check(raw).map(|_| ()).map_err(|e| e.to_string())
}

/// The lookup key of an email: the whole address lowercased, the domain in IDNA form.
///
/// Works on invalid addresses too (they are still stored and found), so it never fails.
pub fn normalize_email(raw: &str) -> String {
    let trimmed = raw.trim();
    match trimmed.rsplit_once('@') {
        Some((local, domain)) => {
            let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_owned());
            format!("{}@{}", local.to_lowercase(), domain.to_lowercase())
        }
        None => trimmed.to_lowercase(),
    }
}

/// What an email value on a profile is known to be. The value itself stays in the
/// `email` field: a contact holds only what is derived from it, small strings inline.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailContact {
    /// Lowercased, IDNA domain: the lookup key.
    pub normalized: CompactString,
    /// Why the syntax is not acceptable to mail systems (`None`: valid).
    pub reason: Option<CompactString>,
}

impl EmailContact {
    /// Validates and normalizes an email value.
    pub fn new(raw: &str) -> Self {
        match email::check(raw) {
            Ok(normalized) => EmailContact {
                normalized,
                reason: None,
            },
            Err(e) => EmailContact {
                normalized: normalize_email(raw).into(),
                reason: Some(e.to_string().into()),
            },
        }
    }

    /// Whether the address is valid.
    pub fn valid(&self) -> bool {
        self.reason.is_none()
    }
}

/// What a phone value on a profile is known to be (the value stays in the `phone` field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneContact {
    /// Whether libphonenumber's metadata accepts the number.
    pub valid: bool,
    /// E.164 form, when the number parses: the lookup key.
    pub e164: Option<CompactString>,
    /// ISO 3166 region of the number.
    pub region: Option<CompactString>,
    /// `mobile`, `fixed_line`, `fixed_line_or_mobile`, `voip`, `toll_free`, ...
    pub kind: Option<&'static str>,
    /// Why it is not valid.
    pub reason: Option<CompactString>,
}

impl PhoneContact {
    /// Parses a phone value; `region` is used when the number has no country code.
    pub fn new(raw: &str, region: Option<&str>) -> Self {
        let region_id = region.and_then(|r| phonenumber::country::Id::from_str(r).ok());
        match phone::parse(raw, region_id) {
            Ok(number) => {
                let c = phone::classify(&number, raw, region_id.as_ref().map(|id| id.as_ref()));
                let valid = c.kind != PhoneNumberType::Unknown;
                PhoneContact {
                    valid,
                    e164: Some(c.e164),
                    region: c.region.map(CompactString::from),
                    kind: Some(type_name(c.kind)),
                    reason: (!valid).then(|| "not a valid number for its region".into()),
                }
            }
            Err(e) => PhoneContact {
                valid: false,
                e164: None,
                region: None,
                kind: None,
                reason: Some(
                    if region_id.is_none() && !raw.trim_start().starts_with('+') {
                        format!("{e}; the number has no country code and the database has no default_region").into()
                    } else {
                        e.to_string().into()
                    },
                ),
            },
        }
    }
}

/// The lookup key for a phone given in any format: its E.164 form, if it parses.
pub fn normalize_phone(raw: &str, region: Option<&str>) -> Option<CompactString> {
    PhoneContact::new(raw, region).e164
}

/// Whether `region` is an ISO 3166 region known to libphonenumber (upper case).
pub fn is_region(region: &str) -> bool {
    region.len() == 2
        && phonenumber::country::Id::from_str(region).is_ok()
        && phonenumber::metadata::DATABASE.by_id(region).is_some()
}

/// Every phone type name [`PhoneContact::kind`] can hold. Profile records store a type as
/// its place here plus one ([`phone_kind_number`]): append only, never reorder.
const PHONE_KINDS: &[&str] = &[
    "fixed_line",
    "mobile",
    "fixed_line_or_mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "emergency",
    "voicemail",
    "short_code",
    "standard_rate",
    "carrier",
    "no_international",
    "unknown",
];

/// The static name of a phone type read back from storage (`unknown` if not one of ours).
pub fn phone_kind(name: &str) -> &'static str {
    PHONE_KINDS
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("unknown")
}

/// How a profile record stores a phone type: 0 for none, else its place in our list
/// plus one (a name not in it is stored as `unknown`).
pub fn phone_kind_number(kind: Option<&str>) -> u8 {
    kind.map_or(0, |k| {
        let k = phone_kind(k);
        PHONE_KINDS
            .iter()
            .position(|n| *n == k)
            .map_or(0, |i| i as u8 + 1)
    })
}

/// The phone type a record's number stands for; `None` when no type has that number.
pub fn phone_kind_of(number: u8) -> Option<Option<&'static str>> {
    match number {
        0 => Some(None),
        n => PHONE_KINDS.get(usize::from(n) - 1).map(|k| Some(*k)),
    }
}

fn type_name(t: PhoneNumberType) -> &'static str {
    use PhoneNumberType as T;
    match t {
        T::FixedLine => "fixed_line",
        T::Mobile => "mobile",
        T::FixedLineOrMobile => "fixed_line_or_mobile",
        T::TollFree => "toll_free",
        T::PremiumRate => "premium_rate",
        T::SharedCost => "shared_cost",
        T::PersonalNumber => "personal_number",
        T::Voip => "voip",
        T::Pager => "pager",
        T::Uan => "uan",
        T::Emergency => "emergency",
        T::Voicemail => "voicemail",
        T::ShortCode => "short_code",
        T::StandardRate => "standard_rate",
        T::Carrier => "carrier",
        T::NoInternational => "no_international",
        T::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalize_case_and_idna() {
        assert_eq!(normalize_email("Ana@Example.COM"), "ana@example.com");
        assert_eq!(
            normalize_email("josé@Bücher.example"),
            "josé@xn--bcher-kva.example"
        );
        assert!(EmailContact::new("ana@example.com").valid());
        assert!(!EmailContact::new("ana@").valid());
        assert!(!EmailContact::new("Ana <ana@example.com>").valid());
    }

    #[test]
    fn phones_parse_to_e164_with_region() {
        let p = PhoneContact::new("912 345 678", Some("PT"));
        assert!(p.valid, "{p:?}");
        assert_eq!(p.e164.as_deref(), Some("+351912345678"));
        assert_eq!(p.region.as_deref(), Some("PT"));
        assert_eq!(p.kind, Some("mobile"));
        assert_eq!(
            normalize_phone("+351 912-345-678", None).as_deref(),
            Some("+351912345678")
        );
        let us = PhoneContact::new("(201) 555-0123", Some("US"));
        assert_eq!(us.kind, Some("fixed_line_or_mobile"));
        assert!(!PhoneContact::new("12", None).valid);
    }

    fn email_reason(raw: &str) -> Option<String> {
        EmailContact::new(raw).reason.map(Into::into)
    }

    #[test]
    fn email_shapes_mail_systems_take() {
        let long_label = "a".repeat(63);
        let local64 = "l".repeat(64);
        let at254 = format!("{local64}@{long_label}.{long_label}.{}.com", "b".repeat(57));
        assert_eq!(at254.len(), 254);
        for ok in [
            "ana+news@example.com",
            "first.o'brien@sub.example.co.uk",
            "!#$%&'*+-/=?^_`{|}~@example.org",
            "josé@bücher.example",
            "उदाहरण.परीक्ष@domain.with.idn.tld",
            "\u{FF20}@fullwidth.at",
            "user@xn--bcher-kva.example",
            "ana@ex-ample.com",
            " ana@example.com ",
            "ana@\u{FF45}xample.com",
            &format!("{local64}@example.com"),
            &at254,
        ] {
            assert_eq!(email_reason(ok), None, "{ok:?}");
        }
        for (bad, why) in [
            ("\"quoted\"@example.com", "quoted"),
            ("\"a b\"@example.com", "quoted"),
            ("a\"b@example.com", "`\"`"),
            ("ana@[192.0.2.1]", "IP-address"),
            ("ana@[IPv6:2001:db8::1]", "IP-address"),
            ("ana@192.0.2.1", "top-level"),
            ("ana@example.123", "top-level"),
            ("ana@example.com.", "host name"),
            ("ana@.example.com", "host name"),
            ("ana@exa_mple.com", "host name"),
            ("ana@example-.com", "host name"),
            ("ana@ab--cd.com", "host name"),
            ("ana@xn--0.com", "host name"),
            ("ana@\u{2488}example.com", "host name"),
            (&format!("ana@{}a.com", long_label), "host name"),
            ("ana@localhost", "needs a dot"),
            ("ana@mail.localhost", "special-use"),
            ("ana@shop.test", "special-use"),
            ("ana@x.onion", "special-use"),
            ("ana@printer.local", "special-use"),
            ("ana@example.invalid", "special-use"),
            (".ana@example.com", "dot"),
            ("ana.@example.com", "dot"),
            ("a..na@example.com", "dot"),
            ("an a@example.com", "` `"),
            ("ana@exam ple.com", "host name"),
            ("ana@example.com\n", "control"),
            ("ana@example.com\r\n", "control"),
            ("an\0a@example.com", "control"),
            ("\tana@example.com", "control"),
            ("an\u{200B}a@example.com", "control, space, format"),
            ("\u{202E}ana@example.com", "control, space, format"),
            ("an\u{E000}a@example.com", "private-use"),
            ("an\u{FDEF}a@example.com", "noncharacter"),
            ("\u{0300}ana@example.com", "combining mark"),
            ("me.\u{037E}@example.com", "`\u{037E}`"),
            ("Ana <ana@example.com>", "display name"),
            ("ana", "no @"),
            ("@example.com", "nothing before"),
            ("ana@", "nothing after"),
            (&format!("{local64}l@example.com"), "65 octets"),
            (&at254.replacen(".bbb", ".bbbb", 1), "255 octets"),
        ] {
            let reason = email_reason(bad).unwrap_or_else(|| panic!("{bad:?} passed"));
            assert!(reason.contains(why), "{bad:?}: {reason}");
        }
    }

    #[test]
    fn a_valid_email_is_keyed_as_normalize_email_keys_it() {
        for raw in [
            "Ana@Example.COM",
            " Ana.Silva+X@Example.com ",
            "josé@Bücher.example",
            "ΣΟΦΙΑΣ@example.gr",
            "ana@\u{FF45}xample.com",
            "ana@XN--BCHER-KVA.example",
        ] {
            let c = EmailContact::new(raw);
            assert!(c.valid(), "{raw:?}: {:?}", c.reason);
            assert_eq!(c.normalized, normalize_email(raw), "{raw:?}");
        }
        assert_eq!(
            EmailContact::new("ΣΟΦΙΑΣ@example.gr").normalized,
            "σοφιας@example.gr"
        );
    }

    #[test]
    fn phone_shapes() {
        let p = |raw: &str, region: Option<&str>| PhoneContact::new(raw, region);
        let key = |raw: &str, region: Option<&str>| p(raw, region).e164.map(String::from);
        // Letters, too few or too many digits.
        assert!(!p("+1-201five five five0123", None).valid);
        assert!(!p("+1 201 555 0123 4567 8901", None).valid);
        assert!(!p("+1 201 555 01", None).valid);
        assert!(!p("", Some("US")).valid);
        assert!(!p("+", None).valid);
        // An extension is not part of the key.
        assert_eq!(
            key("(201) 555-0123 ext. 456", Some("US")).as_deref(),
            Some("+12015550123")
        );
        // Italian numbers keep their leading 0 (the crate's type and region dropped it).
        let it = p("+39 02 1234 5678", None);
        assert_eq!(
            (it.valid, it.kind, it.region.as_deref()),
            (true, Some("fixed_line"), Some("IT"))
        );
        assert_eq!(it.e164.as_deref(), Some("+390212345678"));
        // A pattern matching only a prefix of the number does not make it valid.
        assert!(!p("+86 10 1234 567", None).valid);
        // Digits starting with the default region's code stay national when they are a
        // national number (libphonenumber's rule), and lose it when too long otherwise.
        assert_eq!(
            key("4915123456789", Some("DE")).as_deref(),
            Some("+494915123456789")
        );
        assert_eq!(
            key("351 912 345 678", Some("PT")).as_deref(),
            Some("+351912345678")
        );
        // A foreign number is read by its own country's rules, whatever the default.
        for (raw, region) in [
            ("+39 02 1234 5678", Some("DE")),
            ("00 39 02 1234 5678", Some("FR")),
            ("0039 02 1234 5678", Some("PT")),
        ] {
            assert_eq!(
                key(raw, region).as_deref(),
                Some("+390212345678"),
                "{raw} in {region:?}"
            );
        }
        for (raw, region) in [
            ("+44 (0)20 7946 0958", Some("PT")),
            ("+44 20 7946 0958", Some("DE")),
            ("011 44 020 7946 0958", Some("US")),
            ("tel:+44-20-7946-0958", Some("PT")),
        ] {
            let g = p(raw, region);
            assert!(g.valid, "{raw} in {region:?}: {g:?}");
            assert_eq!(
                g.e164.as_deref(),
                Some("+442079460958"),
                "{raw} in {region:?}"
            );
        }
        // Non-geographic codes have no region.
        let free = p("+800 1234 5678", Some("PT"));
        assert_eq!(
            (free.valid, free.kind, free.region),
            (true, Some("toll_free"), None)
        );
        assert!(!p("+0 44 20 7946 0958", Some("PT")).valid);
    }

    #[test]
    fn regions() {
        assert!(is_region("PT"));
        assert!(!is_region("XX"));
        assert!(!is_region("pt"));
    }
}
