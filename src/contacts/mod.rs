//! Contact values: email and phone validation and the normalized forms used as keys.
//!
//! Emails are checked with `email_address` (RFC 5321/5322/6531 syntax, no display names,
//! no IP literals, a dot in the domain) and normalized for lookups by lowercasing the
//! whole address and writing the domain in its IDNA (punycode) form. Phones are parsed
//! with libphonenumber metadata (`phonenumber`), using the database's default region for
//! numbers without a country code, and keyed by E.164. Pure functions, no I/O.

use std::str::FromStr;

use compact_str::CompactString;
use email_address::{EmailAddress, Options};
use phonenumber::{Mode, Type as PhoneNumberType};

const EMAIL_OPTIONS: Options = Options {
    minimum_sub_domains: 2,
    allow_domain_literal: false,
    allow_display_text: false,
};

/// Checks an email address's syntax; the error is a reason a person can read.
pub fn check_email(raw: &str) -> Result<(), String> {
    EmailAddress::parse_with_options(raw, EMAIL_OPTIONS)
        .map(|_| ())
        .map_err(|e| e.to_string())
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
        EmailContact {
            normalized: normalize_email(raw).into(),
            reason: EmailAddress::parse_with_options(raw.trim(), EMAIL_OPTIONS)
                .err()
                .map(|e| e.to_string().into()),
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
        match phonenumber::parse(region_id, raw) {
            Ok(number) => {
                // `is_valid` is exactly "the type is not Unknown" (phonenumber's
                // validator), and working out the type is the costly part of a parse:
                // done once, not twice.
                let ty = number.number_type(&phonenumber::metadata::DATABASE);
                let valid = ty != PhoneNumberType::Unknown;
                PhoneContact {
                    valid,
                    e164: Some(number.format().mode(Mode::E164).to_string().into()),
                    region: number.country().id().map(|id| id.as_ref().into()),
                    kind: Some(type_name(ty)),
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

/// Every phone type name [`PhoneContact::kind`] can hold.
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

    #[test]
    fn regions() {
        assert!(is_region("PT"));
        assert!(!is_region("XX"));
        assert!(!is_region("pt"));
    }
}
