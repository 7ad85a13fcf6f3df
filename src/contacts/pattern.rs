//! A matcher for libphonenumber's number patterns, compiled once, matched without locks.
//!
//! The metadata's patterns use a small regular language: digits, `\d`, classes of digits
//! and ranges (`[2-46-9]`), non-capturing groups, `|`, `?` and bounded repeats (`{n}`,
//! `{n,m}`); nothing else occurs (a test parses every pattern of every region). For that
//! language a match is a set computation: the set of positions reachable after each part
//! of the pattern, as a bitmask (national numbers are at most 17 digits), so a whole
//! number matches when its end is reachable. This replaces the crate's regexes for
//! classification: those sit in one LRU cache of 100 behind one mutex, keyed by the
//! pattern's text, which every match hashes twice, and they match prefixes only.

/// A parsed pattern.
#[derive(Debug, Clone)]
pub(super) enum Pattern {
    /// One digit from the set (bit `d` for digit `d`).
    Digit(u16),
    Seq(Vec<Pattern>),
    Alt(Vec<Pattern>),
    Repeat(Box<Pattern>, u8, u8),
}

/// The longest number the bitmask can hold (the metadata's longest is 17 digits).
const MAX_DIGITS: usize = 31;

/// `\d`.
const ANY_DIGIT: u16 = 0x3FF;

/// A number prepared for matching: where each digit occurs.
pub(super) struct Digits {
    len: usize,
    /// Bit `i` of `at[d]`: the digit at position `i` is `d`.
    at: [u32; 10],
    /// Every position.
    all: u32,
    /// The first digit, as a bit of a digit set.
    first: u16,
}

impl Digits {
    /// `None` unless `s` is 1 to 31 ASCII digits.
    pub(super) fn new(s: &str) -> Option<Digits> {
        if s.is_empty() || s.len() > MAX_DIGITS {
            return None;
        }
        let mut at = [0u32; 10];
        for (i, b) in s.bytes().enumerate() {
            if !b.is_ascii_digit() {
                return None;
            }
            at[usize::from(b - b'0')] |= 1 << i;
        }
        Some(Digits {
            len: s.len(),
            at,
            all: (1 << s.len()) - 1,
            first: 1 << (s.as_bytes()[0] - b'0'),
        })
    }

    /// The number of digits.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether the first digit is in a set (bit `d` for digit `d`).
    pub(super) fn starts_in(&self, set: u16) -> bool {
        self.first & set != 0
    }
}

impl Pattern {
    /// Parses a metadata pattern (layout whitespace ignored); `None` if it uses syntax
    /// outside the language above.
    pub(super) fn parse(source: &str) -> Option<Pattern> {
        let bytes: Vec<u8> = source
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let mut p = Parser { s: &bytes, i: 0 };
        let pattern = p.alt()?;
        (p.i == bytes.len()).then_some(pattern)
    }

    /// The digits a match of a whole number can start with (bit `d` for digit `d`): a
    /// test of one digit that turns most numbers of another type away before matching
    /// (a mobile number is tried against a region's premium-rate, toll-free, shared-cost
    /// and other patterns first).
    pub(super) fn first_digits(&self) -> u16 {
        self.first().0
    }

    /// The first-digit set and whether the pattern matches the empty string.
    fn first(&self) -> (u16, bool) {
        match self {
            Pattern::Digit(set) => (*set, false),
            Pattern::Seq(parts) => {
                let mut set = 0;
                for p in parts {
                    let (first, empty) = p.first();
                    set |= first;
                    if !empty {
                        return (set, false);
                    }
                }
                (set, true)
            }
            Pattern::Alt(options) => options.iter().fold((0, false), |(set, empty), p| {
                let (first, e) = p.first();
                (set | first, empty || e)
            }),
            Pattern::Repeat(p, min, _) => {
                let (first, empty) = p.first();
                (first, empty || *min == 0)
            }
        }
    }

    /// Whether the whole number matches (libphonenumber's `matchesEntirely`).
    pub(super) fn matches(&self, digits: &Digits) -> bool {
        self.ends(digits, 1) & (1 << digits.len) != 0
    }

    /// Whether a prefix of the number matches (libphonenumber's `lookingAt`).
    pub(super) fn matches_start(&self, digits: &Digits) -> bool {
        self.ends(digits, 1) != 0
    }

    /// The prefixes of the number that match, as a bitmask: bit `i` set when the first
    /// `i` digits do (bit 0: the empty prefix).
    pub(super) fn prefix_matches(&self, digits: &Digits) -> u32 {
        self.ends(digits, 1)
    }

    /// The positions where a match of `self` can end, given those where it can start.
    fn ends(&self, digits: &Digits, starts: u32) -> u32 {
        if starts == 0 {
            return 0;
        }
        match self {
            Pattern::Digit(set) => {
                let here = if *set == ANY_DIGIT {
                    digits.all
                } else {
                    let (mut here, mut rest) = (0, *set);
                    while rest != 0 {
                        here |= digits.at[rest.trailing_zeros() as usize];
                        rest &= rest - 1;
                    }
                    here
                };
                (starts & here) << 1
            }
            Pattern::Seq(parts) => parts
                .iter()
                .try_fold(starts, |at, p| {
                    let next = p.ends(digits, at);
                    (next != 0).then_some(next)
                })
                .unwrap_or(0),
            Pattern::Alt(options) => options
                .iter()
                .fold(0, |acc, p| acc | p.ends(digits, starts)),
            Pattern::Repeat(p, min, max) => {
                let mut at = starts;
                for _ in 0..*min {
                    at = p.ends(digits, at);
                    if at == 0 {
                        return 0;
                    }
                }
                let mut all = at;
                for _ in *min..*max {
                    at = p.ends(digits, at);
                    if at == 0 {
                        break;
                    }
                    all |= at;
                }
                all
            }
        }
    }
}

/// A recursive-descent parser over the pattern's bytes.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.i += usize::from(hit);
        hit
    }

    fn alt(&mut self) -> Option<Pattern> {
        let mut options = vec![self.seq()?];
        while self.eat(b'|') {
            options.push(self.seq()?);
        }
        Some(if options.len() == 1 {
            options.pop()?
        } else {
            Pattern::Alt(options)
        })
    }

    fn seq(&mut self) -> Option<Pattern> {
        let mut parts = Vec::new();
        while let Some(b) = self.peek()
            && b != b'|'
            && b != b')'
        {
            let atom = self.atom()?;
            parts.push(self.quantified(atom)?);
        }
        Some(if parts.len() == 1 {
            parts.pop()?
        } else {
            Pattern::Seq(parts)
        })
    }

    fn atom(&mut self) -> Option<Pattern> {
        match self.peek()? {
            b'0'..=b'9' => {
                let d = self.s[self.i] - b'0';
                self.i += 1;
                Some(Pattern::Digit(1 << d))
            }
            b'\\' => {
                self.i += 1;
                self.eat(b'd').then_some(Pattern::Digit(ANY_DIGIT))
            }
            b'[' => {
                self.i += 1;
                let mut set = 0u16;
                while !self.eat(b']') {
                    let lo = self.digit()?;
                    let hi = if self.eat(b'-') { self.digit()? } else { lo };
                    if hi < lo {
                        return None;
                    }
                    for d in lo..=hi {
                        set |= 1 << d;
                    }
                }
                (set != 0).then_some(Pattern::Digit(set))
            }
            b'(' => {
                self.i += 1;
                // Groups capture nothing we use: `(?:...)` and `(...)` are the same here.
                if self.eat(b'?') && !self.eat(b':') {
                    return None;
                }
                let inner = self.alt()?;
                self.eat(b')').then_some(inner)
            }
            _ => None,
        }
    }

    fn quantified(&mut self, atom: Pattern) -> Option<Pattern> {
        let (min, max) = if self.eat(b'?') {
            (0, 1)
        } else if self.eat(b'{') {
            let min = self.number()?;
            let max = if self.eat(b',') { self.number()? } else { min };
            if !self.eat(b'}') || max < min {
                return None;
            }
            (min, max)
        } else {
            return Some(atom);
        };
        Some(Pattern::Repeat(Box::new(atom), min, max))
    }

    fn digit(&mut self) -> Option<u8> {
        let b = self.peek()?;
        b.is_ascii_digit().then(|| {
            self.i += 1;
            b - b'0'
        })
    }

    fn number(&mut self) -> Option<u8> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
            .filter(|n| usize::from(*n) <= MAX_DIGITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(p: &str, s: &str) -> bool {
        Pattern::parse(p).unwrap().matches(&Digits::new(s).unwrap())
    }

    #[test]
    fn the_language() {
        assert!(full(r"9[1236]\d{7}", "912345678"));
        assert!(!full(r"9[1236]\d{7}", "942345678"));
        assert!(!full(r"9[1236]\d{7}", "91234567"), "too short");
        assert!(
            !full(r"9[1236]\d{7}", "9123456789"),
            "a prefix match is no match"
        );
        assert!(full(
            r"(?:10|2[0-57-9])(?:1(?:00|23)\d\d|95\d{3,4})",
            "1012345"
        ));
        assert!(!full(
            r"(?:10|2[0-57-9])(?:1(?:00|23)\d\d|95\d{3,4})",
            "101234567"
        ));
        assert!(full(r"8\d{5}(?:\d{2,4})?", "812345"));
        assert!(full(r"8\d{5}(?:\d{2,4})?", "81234567"));
        assert!(!full(r"8\d{5}(?:\d{2,4})?", "8123456"));
        assert!(full("0 (?: 6\n  9 )", "069"), "layout whitespace");
        let lead = Pattern::parse("06698").unwrap();
        assert!(lead.matches_start(&Digits::new("0669812345").unwrap()));
        assert!(!lead.matches_start(&Digits::new("0612345").unwrap()));
        for bad in [
            r"\w", "[^1]", "1*", "1+", "(?=1)", "1{2,}", "[3-1]", "(1", "a",
        ] {
            assert!(Pattern::parse(bad).is_none(), "{bad}");
        }
        assert!(Digits::new("12a").is_none());
        assert!(Digits::new("").is_none());
    }

    #[test]
    fn first_digits_hold_every_start_of_a_whole_match() {
        let first = |p: &str| Pattern::parse(p).unwrap().first_digits();
        assert_eq!(first(r"9[1236]\d{7}"), 1 << 9);
        assert_eq!(first(r"(?:10|2[0-57-9])\d"), 1 << 1 | 1 << 2);
        assert_eq!(first(r"(?:1)?(?:2{0,2})3"), 1 << 1 | 1 << 2 | 1 << 3);
        assert_eq!(first(r"\d{2}"), ANY_DIGIT);
    }

    proptest::proptest! {
        /// Patterns of optional and repeated parts: a whole match starts with a digit of
        /// the set, so testing the set first changes no verdict.
        #[test]
        fn a_whole_match_starts_in_the_first_digits(
            pattern in r"(\(\?:[1-3]\)\?|[1-3]\{0,2\}|[4-6]|\[7-9\]){1,4}",
            number in "[1-9]{1,6}",
        ) {
            let p = Pattern::parse(&pattern).unwrap();
            let digits = Digits::new(&number).unwrap();
            if p.matches(&digits) {
                proptest::prop_assert!(digits.starts_in(p.first_digits()), "{}", pattern);
            }
        }
    }
}
