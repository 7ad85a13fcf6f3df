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
//! Numbers written with digits and formatting only (nearly all of them) do not go through
//! the crate's parser, most of the cost of a phone write (about 1.3 µs of 1.9: a scan of
//! each character against its punctuation list, regex-cache lookups behind a mutex,
//! metadata lists allocated per call). [`dialled`] redoes the crate's parse steps for
//! them on the same metadata, compiled with [`Pattern`], and hands anything it cannot
//! follow exactly back to the crate: the verdicts and keys stay the crate's parse, which
//! the tests check it against on every region.
//!
//! A country code's patterns are compiled on first use (tens of microseconds) and kept for
//! the life of the process. Pure, no I/O.

use std::str::FromStr;
use std::sync::{LazyLock, OnceLock};

use compact_str::{CompactString, format_compact};
use phonenumber::ParseError;
use phonenumber::country::{Id, Source};
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use phonenumber::{PhoneNumber, Type, Validation};
use smallvec::SmallVec;

use super::pattern::{Digits, Pattern};

/// As much of the crate's `PhoneNumber` as classification reads; the fast path
/// ([`dialled`]) builds it without the crate's parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Number {
    /// The country calling code.
    pub code: u16,
    /// How the code was found (written with `+`, after an IDD, in the digits, or the
    /// default region's).
    pub source: Source,
    /// The national significant number, leading zeros kept.
    pub national: CompactString,
}

impl From<PhoneNumber> for Number {
    fn from(number: PhoneNumber) -> Number {
        Number {
            code: number.code().value(),
            source: number.code().source(),
            national: format_compact!("{}", number.national()),
        }
    }
}

/// Parses `raw` with the national-prefix rules of the number's own country code.
///
/// For `+…` (and `tel:+…`) the code is read here as libphonenumber does (the first one to
/// three digits that are an assigned code) and the crate is given that code's main region
/// instead of the default; with a shared code (+1, +44, +7...) the regions share their
/// prefix rules. Numbers behind the default region's international prefix (`00 39 …`) are
/// parsed once as before and, when they turn out to belong to another country, again as
/// `+` and their digits. National numbers are parsed with the default region, as before.
///
/// A number written with digits and formatting only is parsed from its digits by
/// [`parse_digits`]: the crate would drop the formatting anyway, after a viability scan
/// that costs some 70 ns per character.
pub(super) fn parse(raw: &str, default: Option<Id>) -> Result<Number, ParseError> {
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
            Some(digits) => parse_digits(region, &digits, true),
            None => phonenumber::parse(region, raw).map(Number::from),
        };
    }
    let number = match plain_digits(unprefixed) {
        Some(digits) => parse_digits(default, &digits, false),
        None => phonenumber::parse(default, raw).map(Number::from),
    }?;
    if number.source == Source::Idd
        && let Some(meta) = default.and_then(|d| DATABASE.by_id(d.as_ref()))
        && meta.country_code() != number.code
        && let Some(digits) = plain_digits(raw)
        && let Some(idd) = meta.international_prefix().and_then(|p| p.find(&digits))
        && idd.start() == 0
        && let Ok(again) = parse(&format!("+{}", &digits[idd.end()..]), default)
        && again.code == number.code
    {
        return Ok(again);
    }
    Ok(number)
}

/// The crate's `parse(region, "+digits")` (`plus`) or `parse(region, "digits")`.
///
/// [`dialled`] answers most of them, without the crate's costs; the rest go to the crate.
fn parse_digits(region: Option<Id>, digits: &str, plus: bool) -> Result<Number, ParseError> {
    if let Some(number) = region.and_then(|r| dialled(r, digits, plus)) {
        return Ok(number);
    }
    let parsed = if plus {
        phonenumber::parse(region, format_compact!("+{digits}"))
    } else {
        phonenumber::parse(region, digits)
    };
    parsed.map(Number::from)
}

/// The crate's parse of plain digits (`+` and them when `plus`) with `region` as the
/// default, step by step on the compiled metadata: its `country_code` (IDD, then the
/// country code), `national_number` (national prefix for parsing) and the tail of `parse`
/// (the national prefix again, the length check), quirks included, since the verdicts
/// and keys are those of the crate's parse.
///
/// `None` whenever the crate would fail (so the caller gets the crate's error), or would
/// apply a rule this cannot follow exactly: a pattern outside [`Pattern`]'s language, a
/// regex match whose end depends on the regex engine's preference among several, a
/// transform rule (it reads capture groups), a number too long for [`Digits`] or for the
/// crate's `NationalNumber`.
fn dialled(region: Id, digits: &str, plus: bool) -> Option<Number> {
    let r = region_by_id(region)?;
    let d = r.dialling.as_ref()?;
    // The crate's `is_viable`: two digits, or three after a `+`.
    if digits.len() < if plus { 3 } else { 2 } {
        return None;
    }
    // `international_prefix`: an IDD not followed by 0 goes; after `+` too.
    let (mut national, mut source) = (digits, if plus { Source::Plus } else { Source::Default });
    if let Some(idd) = &d.idd
        && let Some(end) = match_at_start(idd, national)?
        && !national[end..].starts_with('0')
    {
        if !plus {
            source = Source::Idd;
        }
        national = &national[end..];
    }
    // `country_code`.
    let code = if source == Source::Default {
        let code = &*d.code;
        if national.starts_with(code)
            && (!d.general_is_match(r, national)? || !d.length(national.len()).is_possible())
        {
            source = Source::Number;
            national = &national[code.len()..];
        }
        d.code_value
    } else {
        if national.len() <= 2 || national.starts_with('0') {
            return None;
        }
        let (code, len) = (1..=3).find_map(|len| {
            let code = national[..len].parse().ok()?;
            assigned(code).then_some((code, len))
        })?;
        national = &national[len..];
        code
    };
    // `national_number`, then `parse`'s own strip of the national prefix.
    let mut potential = national;
    match &d.for_parsing {
        None => {
            if let Some(p) = r.national_prefix {
                potential = potential.strip_prefix(p).unwrap_or(potential);
            }
        }
        Some(for_parsing) => {
            if let Some(end) = match_at_start(for_parsing, potential)? {
                if d.transform {
                    return None;
                }
                // The crate's viability check compares the number with itself here, so the
                // match always goes (and its carrier code is not read).
                potential = &potential[end..];
            }
        }
    }
    if let Some(p) = r.national_prefix {
        potential = potential.strip_prefix(p).unwrap_or(potential);
    }
    if d.length(potential.len()) != Validation::TooShort {
        national = potential;
    }
    // The crate refuses fewer than 2 digits, more than 17 or 2^56, and all zeros.
    if !(2..=16).contains(&national.len()) || national.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(Number {
        code,
        source,
        national: national.into(),
    })
}

/// Where the crate's regex `find` ends when it matches at the start of `s`: `Some(None)`
/// when no match starts there. `None` when several ends are possible (the regex engine's
/// leftmost-first preference picks one) or `s` is not 1 to 31 digits.
fn match_at_start(pattern: &Pattern, s: &str) -> Option<Option<usize>> {
    let ends = pattern.prefix_matches(&Digits::new(s)?);
    match ends.count_ones() {
        0 => Some(None),
        1 => Some(Some(ends.trailing_zeros() as usize)),
        _ => None,
    }
}

/// The compiled region of an ISO 3166 id.
fn region_by_id(id: Id) -> Option<&'static Region> {
    // By the id's place in its enum: the crate's own lookup hashes the id's name.
    static BY_ID: [OnceLock<Option<&'static Region>>; 256] = [const { OnceLock::new() }; 256];
    let find = || {
        let meta = DATABASE.by_id(id.as_ref())?;
        regions(meta.country_code())?
            .iter()
            .find(|r| r.id == Some(meta.id()))
    };
    match BY_ID.get(id as usize) {
        Some(cell) => *cell.get_or_init(find),
        None => find(),
    }
}

/// The formatting characters people put in phone numbers.
fn is_plain_punctuation(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '-' | '.' | '(' | ')' | '/')
}

/// The digits of a number written with digits and formatting only.
fn plain_digits(raw: &str) -> Option<CompactString> {
    let raw = raw.trim();
    if !raw
        .chars()
        .all(|c| c.is_ascii_digit() || is_plain_punctuation(c))
    {
        return None;
    }
    // Gathered as bytes (the formatting's own bytes are never ASCII digits): pushed a
    // character at a time, they were most of this function's cost.
    let digits: SmallVec<[u8; 32]> = raw.bytes().filter(u8::is_ascii_digit).collect();
    CompactString::from_utf8(&digits).ok()
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

/// Classifies a number parsed from `raw` with `default_region`.
pub(super) fn classify(number: &Number, raw: &str, default_region: Option<&str>) -> Classified {
    let code = number.code;
    let mut national = number.national.clone();
    if number.source == Source::Number
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
        e164: e164(code, &national),
        region,
        kind,
    }
}

/// `+`, the code and the national number, without `format!`'s machinery (a tenth of a
/// phone write's cost).
fn e164(code: u16, national: &str) -> CompactString {
    let mut out = CompactString::with_capacity(4 + national.len());
    out.push('+');
    out.push_str(itoa::Buffer::new().format(code));
    out.push_str(national);
    out
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

/// A calling code's regions, compiled on first use.
type CodeRegions = OnceLock<Vec<Region>>;

/// Calling codes are below this (three digits at most).
const CODE_LIMIT: usize = 1000;

/// Every calling code's regions, by code: `None` for an unassigned code, compiled on first
/// use. An array, not a map: a phone write looks codes up four to six times, and hashing
/// the `u16` was most of that.
static CODES: LazyLock<Box<[Option<CodeRegions>]>> = LazyLock::new(|| {
    (0..CODE_LIMIT as u16)
        .map(|code| (code > 0 && DATABASE.by_code(&code).is_some()).then(OnceLock::new))
        .collect()
});

/// Whether `code` is an assigned country calling code.
fn assigned(code: u16) -> bool {
    CODES.get(usize::from(code)).is_some_and(Option::is_some)
}

/// The regions of a country calling code (the main one first), compiled once.
fn regions(code: u16) -> Option<&'static [Region]> {
    let cell = CODES.get(usize::from(code))?.as_ref()?;
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
    /// `None`: a rule is outside [`Pattern`]'s language, so the crate parses.
    dialling: Option<Dialling>,
}

/// What the crate's parser reads from a region's metadata, for [`dialled`].
struct Dialling {
    /// The country calling code.
    code_value: u16,
    /// The same in digits, as the crate looks for it at the start of a number.
    code: CompactString,
    /// The international (IDD) prefix.
    idd: Option<Pattern>,
    /// The national prefix for parsing (the plain national prefix is in [`Region`]).
    for_parsing: Option<Pattern>,
    /// Whether the prefix for parsing comes with a transform rule.
    transform: bool,
    /// The crate's general descriptor lengths (not [`Region::general`]'s union: the crate
    /// reads the metadata's own, which 9.0.33 leaves empty).
    lengths: &'static [u16],
    /// The crate's general descriptor local-only lengths.
    local_lengths: &'static [u16],
}

impl Dialling {
    /// `None` when a rule is outside [`Pattern`]'s language (29 regions in 9.0.33: a
    /// prefix for parsing ending in `$`).
    fn new(meta: &'static Metadata) -> Option<Dialling> {
        let optional = |p: Option<&str>| p.map_or(Some(None), |p| Pattern::parse(p).map(Some));
        let general = meta.descriptors().general();
        Some(Dialling {
            code_value: meta.country_code(),
            code: format_compact!("{}", meta.country_code()),
            idd: optional(meta.international_prefix().map(|p| p.as_str()))?,
            for_parsing: optional(meta.national_prefix_for_parsing().map(|p| p.as_str()))?,
            transform: meta.national_prefix_transform_rule().is_some(),
            lengths: general.possible_length(),
            local_lengths: general.possible_local_length(),
        })
    }

    /// The crate's `Descriptor::is_match` on the general descriptor: a length it lists
    /// (any, if none) and the pattern matching at the start (`find` at 0).
    fn general_is_match(&self, region: &Region, national: &str) -> Option<bool> {
        let len = national.len() as u16;
        Some(
            (self.lengths.is_empty() || self.lengths.contains(&len))
                && region
                    .general
                    .pattern
                    .matches_start(&Digits::new(national)?),
        )
    }

    /// The crate's `validator::length` with `Type::Unknown` (the general descriptor, so its
    /// choice between a type's lengths and the general ones does not arise).
    fn length(&self, len: usize) -> Validation {
        let len = len as u16;
        let Some((&min, &max)) = self.lengths.first().zip(self.lengths.last()) else {
            return Validation::InvalidLength;
        };
        if self.local_lengths.contains(&len) {
            Validation::IsPossibleLocalOnly
        } else if len == min {
            Validation::IsPossible
        } else if len < min {
            Validation::TooShort
        } else if len > max {
            Validation::TooLong
        } else if self.lengths.contains(&len) {
            Validation::IsPossible
        } else {
            Validation::InvalidLength
        }
    }
}

/// One type of number of a region.
struct Desc {
    pattern: Pattern,
    /// The digits its numbers start with ([`Pattern::first_digits`]).
    first: u16,
    /// Empty: any length the pattern allows.
    lengths: Vec<u16>,
}

impl Desc {
    fn new(d: &Descriptor) -> Desc {
        Desc::of(
            compile(d.national_number().as_str()),
            d.possible_length().to_vec(),
        )
    }

    fn of(pattern: Pattern, lengths: Vec<u16>) -> Desc {
        Desc {
            first: pattern.first_digits(),
            pattern,
            lengths,
        }
    }

    /// libphonenumber's `isNumberMatchingDesc`.
    fn matches(&self, digits: &Digits) -> bool {
        digits.starts_in(self.first)
            && (self.lengths.is_empty() || self.lengths.contains(&(digits.len() as u16)))
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
            general: Desc::of(compile(d.general().national_number().as_str()), lengths),
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
            dialling: Dialling::new(meta),
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

    /// The crate's own parse of `[+]digits`: the reference for [`dialled`].
    fn by_crate(region: Id, digits: &str, plus: bool) -> Result<Number, String> {
        let raw = if plus {
            format!("+{digits}")
        } else {
            digits.to_owned()
        };
        phonenumber::parse(Some(region), raw)
            .map(Number::from)
            .map_err(|e| e.to_string())
    }

    /// Whether the fast path answered `[+]digits`; when it does, it must be the crate's
    /// answer (code, its source and the national number: all that classification reads).
    fn agrees(region: Id, digits: &str, plus: bool) -> bool {
        let Some(ours) = dialled(region, digits, plus) else {
            return false;
        };
        let plus = if plus { "+" } else { "" };
        assert_eq!(
            Ok(ours),
            by_crate(region, digits, plus == "+"),
            "{region:?} {plus}{digits}"
        );
        true
    }

    /// Digits as people dial them in `meta`'s region: national significant numbers
    /// (examples and near misses) alone, behind the national prefix, the country code,
    /// the international prefix, and the same for a few foreign numbers.
    fn dialled_forms(meta: &Metadata) -> Vec<(String, bool)> {
        let code = meta.country_code().to_string();
        let np = meta.national_prefix().unwrap_or("0");
        let idd = meta.preferred_international_prefix().unwrap_or("00");
        let mut out = Vec::new();
        for x in samples(meta) {
            for (form, plus) in [
                (x.clone(), false),
                (format!("{np}{x}"), false),
                (format!("{code}{x}"), false),
                (format!("{code}{np}{x}"), false),
                (format!("{idd}{code}{x}"), false),
                (format!("{idd}{code}{np}{x}"), false),
                (format!("{idd}0{x}"), false),
                (format!("{code}{x}"), true),
                (format!("{code}{np}{x}"), true),
                (format!("{idd}{code}{x}"), true),
                (x, true),
            ] {
                out.push((form, plus));
            }
        }
        for foreign in ["390212345678", "33612345678", "442079460958", "12015550123"] {
            out.push((format!("{idd}{foreign}"), false));
            out.push((format!("00{foreign}"), false));
        }
        out
    }

    #[test]
    fn the_fast_path_parses_every_region_as_the_crate_does() {
        let (mut answered, mut parsed, mut regions_fast) = (0, 0, 0);
        for meta in DATABASE.iter() {
            let Ok(id) = Id::from_str(meta.id()) else {
                continue; // `001`: never a default region.
            };
            regions_fast += usize::from(region_by_id(id).is_some_and(|r| r.dialling.is_some()));
            for (digits, plus) in dialled_forms(meta) {
                answered += usize::from(agrees(id, &digits, plus));
                parsed += usize::from(by_crate(id, &digits, plus).is_ok());
            }
        }
        // The fast path must be the common path, not a corner. The 29 regions without one
        // end a prefix for parsing with `$` (small islands of shared codes, and JP).
        eprintln!("{answered} of {parsed} parsed numbers answered by the fast path");
        assert!(
            regions_fast >= 216,
            "{regions_fast} regions with a fast path"
        );
        assert!(
            answered * 100 > parsed * 80,
            "{answered} of {parsed} parsed numbers answered by the fast path"
        );
    }

    /// The rules [`dialled`] matches at the start of a number ([`match_at_start`],
    /// [`Pattern::matches_start`]) against the crate's regexes, where `find` decides.
    #[test]
    fn dialling_rules_find_as_the_regexes_do() {
        let mut checks = 0;
        for meta in DATABASE.iter() {
            let forms = dialled_forms(meta);
            let general = meta.descriptors().general().national_number();
            let rules = [
                meta.international_prefix(),
                meta.national_prefix_for_parsing(),
            ];
            for (s, _) in &forms {
                let Some(digits) = Digits::new(s) else {
                    continue;
                };
                let ours = Pattern::parse(general.as_str()).unwrap();
                assert_eq!(
                    ours.matches_start(&digits),
                    general.find(s).is_some_and(|m| m.start() == 0),
                    "{} {s} against {}",
                    meta.id(),
                    general.as_str()
                );
                for re in rules.into_iter().flatten() {
                    let Some(ours) = Pattern::parse(re.as_str()) else {
                        continue;
                    };
                    if let Some(end) = match_at_start(&ours, s) {
                        assert_eq!(
                            end,
                            re.find(s).filter(|m| m.start() == 0).map(|m| m.end()),
                            "{} {s} against {}",
                            meta.id(),
                            re.as_str()
                        );
                        checks += 1;
                    }
                }
            }
        }
        assert!(checks > 40_000, "{checks} checks");
    }

    /// Regions with every kind of dialling rule: plain, prefixes for parsing with and
    /// without transform rules, IDDs with alternatives, shared codes.
    const PROP_REGIONS: &[&str] = &[
        "PT", "ES", "FR", "DE", "GB", "US", "BR", "IT", "AR", "MX", "JP", "CN", "IN", "AU", "RU",
        "KZ", "CO", "KR", "BY", "GG", "JM", "SG", "NZ", "UZ",
    ];

    #[test]
    fn plain_digits_keeps_the_digits_of_formatted_numbers_only() {
        assert_eq!(
            plain_digits(" 351 (91) 000-00.00 ").as_deref(),
            Some("351910000000")
        );
        assert_eq!(
            plain_digits("91\u{a0}000/0000").as_deref(),
            Some("910000000")
        );
        assert_eq!(plain_digits("").as_deref(), Some(""));
        assert_eq!(plain_digits("91 000 ext 5"), None);
        assert_eq!(plain_digits("٩١٠"), None);
    }

    #[test]
    fn e164_writes_codes_of_one_to_three_digits() {
        for code in [1, 7, 44, 86, 351, 999] {
            assert_eq!(e164(code, "0123"), format!("+{code}0123"));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        #[test]
        fn the_fast_path_parses_generated_numbers_as_the_crate_does(
            region in proptest::sample::select(PROP_REGIONS),
            lead in 0..6usize,
            body in "[0-9]{0,17}",
            plus: bool,
        ) {
            let id = Id::from_str(region).unwrap();
            let meta = DATABASE.by_id(region).unwrap();
            let code = meta.country_code().to_string();
            let lead = [
                "",
                meta.national_prefix().unwrap_or("0"),
                &code,
                meta.preferred_international_prefix().unwrap_or("00"),
                "0",
                "1",
            ][lead];
            agrees(id, &format!("{lead}{body}"), plus);
        }

    }
}
