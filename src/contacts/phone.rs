//! Phone classification: libphonenumber's rules on `phonenumber`'s parser and metadata.
//!
//! `phonenumber` 0.3.10 (libphonenumber metadata 9.0.33) parses well, but around the
//! parse it departs from libphonenumber in ways that change verdicts and keys:
//!
//! - it tests a pattern with `find` at offset 0, so a pattern matching only a *prefix* of
//!   the number accepts it (`+86 10 1234 567` is a "fixed line"); libphonenumber requires
//!   the whole number to match (`matchesEntirely`);
//! - `PhoneNumber::number_type` and `country()` drop the national number's leading zeros,
//!   so every Italian fixed line (`+39 02 1234 5678`) is `Unknown` with no region (its own
//!   `is_valid` keeps the zeros: the two disagree);
//! - digits dialled without `+` that start with the default region's country code always
//!   lose it (`4915123456789` in DE → +49 15123456789); libphonenumber keeps them as a
//!   national number when they are one (→ +49 4915123456789) and strips the code only when
//!   they are not, or are too long;
//! - a number written with `+` or an international prefix gets its national prefix stripped
//!   by the rules of the *default* region, not of its own country: with default DE,
//!   `+39 02 1234 5678` loses the Italian 0 (→ +39 212345678, invalid) and with default
//!   PT, `+44 (0)20 7946 0958` keeps the British trunk 0 (→ +44 020..., invalid);
//!   libphonenumber uses the rules of the number's country code;
//! - its E.164 formatting first looks for the national format of the number (a regex
//!   search per format of the region) and then does not use it.
//!
//! So we keep the crate's parser and metadata, call it with the region whose rules apply
//! ([`parse`]), and redo the rest faithfully to libphonenumber's `getRegionCodeForNumber`,
//! `getNumberTypeHelper` and `maybeExtractCountryCode`, matching the metadata's patterns
//! with [`Pattern`] (whole numbers, no locks, no regex cache) instead of the crate's
//! regexes.
//!
//! A country code's patterns are compiled on first use (tens of microseconds) and kept for
//! the life of the process. Pure, no I/O.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{LazyLock, OnceLock};

use compact_str::{CompactString, format_compact};
use phonenumber::ParseError;
use phonenumber::country::{Id, Source};
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use phonenumber::{PhoneNumber, Type};

use super::pattern::{Digits, Pattern};

/// Parses `raw` with the national-prefix rules of the number's own country code.
///
/// For `+…` (and `tel:+…`) the code is read here as libphonenumber does (the first one to
/// three digits that are an assigned code) and the crate is given that code's main region
/// instead of the default; with a shared code (+1, +44, +7...) the regions share their
/// prefix rules. Numbers behind the default region's international prefix (`00 39 …`) are
/// parsed once as before and, when they turn out to belong to another country, again as
/// `+` and their digits. National numbers are parsed with the default region, as before.
///
/// A number written with digits and formatting only reaches the crate as its digits: the
/// crate drops the formatting anyway, after a viability scan that costs some 70 ns per
/// character, most of a parse.
pub(super) fn parse(raw: &str, default: Option<Id>) -> Result<PhoneNumber, ParseError> {
    let trimmed = raw.trim_start();
    let unprefixed = match trimmed.get(..4) {
        Some(tel) if tel.eq_ignore_ascii_case("tel:") => &trimmed[4..],
        _ => trimmed,
    };
    if let Some(rest) = unprefixed
        .strip_prefix('+')
        .or_else(|| unprefixed.strip_prefix('\u{FF0B}'))
    {
        // Codes never start with 0 (the crate then refuses the number, as it should).
        let mut code = 0;
        let own = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || is_plain_punctuation(*c))
            .filter_map(|c| c.to_digit(10))
            .take(3)
            .find_map(|d| {
                code = code * 10 + d as u16;
                if code == 0 {
                    return Some(None);
                }
                regions(code).map(Some)
            })
            .flatten();
        // A non-geographic code (`001`) has no region: the crate finds its metadata.
        let region = own.and_then(|rs| Id::from_str(rs.first()?.id?).ok());
        return match plain_digits(rest) {
            Some(digits) => phonenumber::parse(region, format_compact!("+{digits}")),
            None => phonenumber::parse(region, raw),
        };
    }
    let number = match plain_digits(unprefixed) {
        Some(digits) => phonenumber::parse(default, digits),
        None => phonenumber::parse(default, raw),
    }?;
    let code = number.code().value();
    let default_meta = default.and_then(|d| DATABASE.by_id(d.as_ref()));
    if number.code().source() == Source::Idd
        && let Some(meta) = default_meta
        && meta.country_code() != code
        && let Some(digits) = plain_digits(raw)
        && let Some(idd) = meta.international_prefix().and_then(|p| p.find(&digits))
        && idd.start() == 0
        && let Ok(again) = parse(&format!("+{}", &digits[idd.end()..]), default)
        && again.code().value() == code
    {
        return Ok(again);
    }
    Ok(number)
}

/// The formatting characters people put in phone numbers.
fn is_plain_punctuation(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '-' | '.' | '(' | ')' | '/')
}

/// The digits of a number written with digits and formatting only.
fn plain_digits(raw: &str) -> Option<CompactString> {
    let mut digits = CompactString::default();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !is_plain_punctuation(c) {
            return None;
        }
    }
    Some(digits)
}

/// What we derive from a parsed number.
pub(super) struct Classified {
    /// `+`, the country code and the national significant number (leading zeros kept).
    pub e164: CompactString,
    /// The region the number belongs to (`None`: a non-geographic code, or a shared code
    /// whose regions all refuse the number).
    pub region: Option<&'static str>,
    /// libphonenumber's type; `Unknown` means not valid.
    pub kind: Type,
}

/// Classifies a number the crate parsed from `raw` with `default_region`.
pub(super) fn classify(
    number: &PhoneNumber,
    raw: &str,
    default_region: Option<&str>,
) -> Classified {
    let code = number.code().value();
    let mut national = format_compact!("{}", number.national());
    if number.code().source() == Source::Number
        && let Some(kept) =
            default_region.and_then(|r| national_as_written(raw, code, &national, r))
    {
        national = kept;
    }
    let (region, kind) = match region_and_type(code, &national) {
        Some((r, t)) => (r.id, t),
        None => (None, Type::Unknown),
    };
    Classified {
        e164: format_compact!("+{code}{national}"),
        region,
        kind,
    }
}

/// libphonenumber's `maybeExtractCountryCode` for digits written without `+` or an
/// international prefix that start with the default region's code: they stay a national
/// number unless (they do not match the region's numbers and the rest does) or they are
/// too long for it. `None`: the crate's stripping stands.
///
/// Only plain digits and punctuation are judged; anything else (letters, an extension, a
/// `tel:` URI) keeps the crate's reading, as does a number that starts with the national
/// prefix (libphonenumber would strip that too, which the crate already did).
fn national_as_written(
    raw: &str,
    code: u16,
    stripped: &str,
    region: &str,
) -> Option<CompactString> {
    let full = plain_digits(raw)?;
    let r = regions(code)?.iter().find(|r| r.id == Some(region))?;
    if !full.starts_with(format_compact!("{code}").as_str())
        || r.national_prefix.is_some_and(|p| full.starts_with(p))
    {
        return None;
    }
    let (whole, rest) = (Digits::new(&full)?, Digits::new(stripped)?);
    let too_long = whole.len() > r.max_length;
    // The general pattern alone, without lengths: libphonenumber's `matchNationalNumber`.
    let keep =
        !too_long && (r.general.pattern.matches(&whole) || !r.general.pattern.matches(&rest));
    keep.then_some(full)
}

/// libphonenumber's `getRegionCodeForNumber` and the type in that region.
fn region_and_type(code: u16, national: &str) -> Option<(&'static Region, Type)> {
    let regions = regions(code)?;
    let Some(digits) = Digits::new(national) else {
        // The crate's parser yields 2 to 17 digits; anything else is unknown anyway.
        return match regions {
            [only] => Some((only, Type::Unknown)),
            _ => None,
        };
    };
    if let [only] = regions {
        return Some((only, only.number_type(&digits)));
    }
    for r in regions {
        match &r.leading_digits {
            Some(lead) if lead.matches_start(&digits) => return Some((r, r.number_type(&digits))),
            Some(_) => {}
            None => {
                let t = r.number_type(&digits);
                if t != Type::Unknown {
                    return Some((r, t));
                }
            }
        }
    }
    None
}

/// The regions of a country calling code (the main one first), compiled once.
fn regions(code: u16) -> Option<&'static [Region]> {
    static CODES: LazyLock<HashMap<u16, OnceLock<Vec<Region>>>> = LazyLock::new(|| {
        (1..1000)
            .filter(|code| DATABASE.by_code(code).is_some())
            .map(|code| (code, OnceLock::new()))
            .collect()
    });
    let cell = CODES.get(&code)?;
    Some(cell.get_or_init(|| {
        DATABASE
            .by_code(&code)
            .unwrap_or_default()
            .into_iter()
            .map(Region::new)
            .collect()
    }))
}

/// One region's metadata, compiled.
struct Region {
    /// ISO 3166 id; `None` for the non-geographic codes (`001`).
    id: Option<&'static str>,
    national_prefix: Option<&'static str>,
    /// Matched at the start only (libphonenumber's `lookingAt`).
    leading_digits: Option<Pattern>,
    /// Its lengths are the union of the types' (libphonenumber derives them so when it
    /// builds its metadata; the XML the crate loads does not carry them).
    general: Desc,
    max_length: usize,
    /// Tested in this order, before fixed line and mobile (libphonenumber's order).
    special: Vec<(Type, Desc)>,
    fixed_line: Option<Desc>,
    mobile: Option<Desc>,
    /// The metadata gives one pattern for both: every match is `FixedLineOrMobile`.
    same_fixed_mobile: bool,
}

/// One type of number of a region.
struct Desc {
    pattern: Pattern,
    /// Empty: any length the pattern allows.
    lengths: Vec<u16>,
}

impl Desc {
    fn new(d: &Descriptor) -> Desc {
        Desc {
            pattern: compile(d.national_number().as_str()),
            lengths: d.possible_length().to_vec(),
        }
    }

    /// libphonenumber's `isNumberMatchingDesc`.
    fn matches(&self, digits: &Digits) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(digits.len() as u16)))
            && self.pattern.matches(digits)
    }
}

fn compile(source: &str) -> Pattern {
    Pattern::parse(source).unwrap_or_else(|| {
        // The metadata is compiled into the crate; `every_metadata_pattern_compiles`
        // checks all of it, so this fires only on a crate upgrade that skipped the tests.
        panic!("phone metadata pattern outside the supported language: {source}")
    })
}

impl Region {
    fn new(meta: &'static Metadata) -> Region {
        let d = meta.descriptors();
        let types = [d.fixed_line(), d.mobile(), d.premium_rate(), d.toll_free()]
            .into_iter()
            .chain([d.shared_cost(), d.voip(), d.personal_number(), d.pager()])
            .chain([d.uan(), d.voicemail()]);
        let mut lengths: Vec<u16> = types
            .flatten()
            .flat_map(|x| x.possible_length().iter().copied())
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        let special = [
            (Type::PremiumRate, d.premium_rate()),
            (Type::TollFree, d.toll_free()),
            (Type::SharedCost, d.shared_cost()),
            (Type::Voip, d.voip()),
            (Type::PersonalNumber, d.personal_number()),
            (Type::Pager, d.pager()),
            (Type::Uan, d.uan()),
            (Type::Voicemail, d.voicemail()),
        ];
        Region {
            id: (meta.id() != "001").then(|| meta.id()),
            national_prefix: meta.national_prefix(),
            leading_digits: meta.leading_digits().map(|l| compile(l.as_str())),
            max_length: lengths.last().map_or(usize::MAX, |l| usize::from(*l)),
            general: Desc {
                pattern: compile(d.general().national_number().as_str()),
                lengths,
            },
            special: special
                .into_iter()
                .filter_map(|(t, x)| x.map(|x| (t, Desc::new(x))))
                .collect(),
            fixed_line: d.fixed_line().map(Desc::new),
            mobile: d.mobile().map(Desc::new),
            same_fixed_mobile: match (d.fixed_line(), d.mobile()) {
                (Some(f), Some(m)) => f.national_number().as_str() == m.national_number().as_str(),
                _ => false,
            },
        }
    }

    /// libphonenumber's `getNumberTypeHelper`.
    fn number_type(&self, digits: &Digits) -> Type {
        if !self.general.matches(digits) {
            return Type::Unknown;
        }
        if let Some((t, _)) = self.special.iter().find(|(_, x)| x.matches(digits)) {
            return *t;
        }
        let mobile = || self.mobile.as_ref().is_some_and(|m| m.matches(digits));
        if self.fixed_line.as_ref().is_some_and(|f| f.matches(digits)) {
            return if self.same_fixed_mobile || mobile() {
                Type::FixedLineOrMobile
            } else {
                Type::FixedLine
            };
        }
        if !self.same_fixed_mobile && mobile() {
            return Type::Mobile;
        }
        Type::Unknown
    }
}

#[cfg(test)]
mod tests {
    use phonenumber::metadata::{Database, loader};

    use super::*;

    /// The descriptors a region's classification reads.
    fn descriptors(meta: &Metadata) -> Vec<&Descriptor> {
        let d = meta.descriptors();
        [d.fixed_line(), d.mobile(), d.premium_rate(), d.toll_free()]
            .into_iter()
            .chain([d.shared_cost(), d.voip(), d.personal_number(), d.pager()])
            .chain([d.uan(), d.voicemail()])
            .flatten()
            .chain([d.general()])
            .collect()
    }

    /// The region's example numbers and near misses of them.
    fn samples(meta: &Metadata) -> Vec<String> {
        let mut out = Vec::new();
        for e in descriptors(meta).iter().filter_map(|d| d.example()) {
            let bump = |s: &str, i: usize| {
                let mut b = s.as_bytes().to_vec();
                b[i] = b'0' + (b[i] - b'0' + 1) % 10;
                String::from_utf8(b).unwrap()
            };
            out.push(e.to_owned());
            out.push(e[..e.len() - 1].to_owned());
            out.push(format!("{e}0"));
            out.push(format!("{e}5"));
            out.push(bump(e, 0));
            out.push(bump(e, e.len() / 2));
            out.push(bump(e, e.len() - 1));
        }
        out.retain(|s| !s.is_empty());
        out
    }

    #[test]
    fn every_metadata_pattern_compiles_and_every_example_is_valid() {
        let mut regions_seen = 0;
        for code in 1..1000 {
            let Some(rs) = regions(code) else { continue };
            let metas = DATABASE.by_code(&code).unwrap();
            for (r, meta) in rs.iter().zip(metas) {
                regions_seen += 1;
                for e in descriptors(meta).iter().filter_map(|d| d.example()) {
                    let t = r.number_type(&Digits::new(e).unwrap());
                    assert_ne!(t, Type::Unknown, "+{code} {e} ({})", meta.id());
                }
            }
        }
        assert!(regions_seen > 240, "{regions_seen} regions");
    }

    /// [`Pattern`] against the regex engine the crate uses, on the same patterns anchored
    /// at both ends, for every pattern of every region.
    #[test]
    fn patterns_match_as_anchored_regexes_do() {
        let mut checks = 0;
        for code in 1..1000u16 {
            let Some(metas) = DATABASE.by_code(&code) else {
                continue;
            };
            for meta in metas {
                let descs = descriptors(meta);
                let anchored = |d: &Descriptor| loader::Descriptor {
                    national_number: Some(format!("^(?:{})$", d.national_number().as_str())),
                    ..Default::default()
                };
                // The oracle: one descriptor per pattern, in the slots the loader has.
                let mut m = loader::Metadata {
                    id: Some("ZZ".into()),
                    country_code: Some(code),
                    general: Some(anchored(descs[descs.len() - 1])),
                    ..Default::default()
                };
                let slots = [
                    &mut m.fixed_line,
                    &mut m.mobile,
                    &mut m.premium_rate,
                    &mut m.toll_free,
                    &mut m.shared_cost,
                    &mut m.voip,
                    &mut m.personal_number,
                    &mut m.pager,
                    &mut m.uan,
                    &mut m.voicemail,
                ];
                let n = descs.len() - 1;
                for (slot, d) in slots.into_iter().zip(&descs[..n]) {
                    *slot = Some(anchored(d));
                }
                let db = Database::from(vec![m]).unwrap();
                let o = db.by_id("ZZ").unwrap().descriptors();
                let oracles = [o.fixed_line(), o.mobile(), o.premium_rate(), o.toll_free()]
                    .into_iter()
                    .chain([o.shared_cost(), o.voip(), o.personal_number(), o.pager()])
                    .chain([o.uan(), o.voicemail()])
                    .flatten()
                    .take(n)
                    .chain([o.general()]);
                let samples = samples(meta);
                for (d, oracle) in descs.iter().zip(oracles) {
                    let ours = Pattern::parse(d.national_number().as_str()).unwrap();
                    for s in &samples {
                        let expected = oracle.national_number().is_match(s);
                        assert_eq!(
                            ours.matches(&Digits::new(s).unwrap()),
                            expected,
                            "{} +{code} {s} against {}",
                            meta.id(),
                            d.national_number().as_str()
                        );
                        checks += 1;
                    }
                }
            }
        }
        assert!(checks > 40_000, "{checks} checks");
    }
}
