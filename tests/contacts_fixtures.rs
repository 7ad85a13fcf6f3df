//! The contact validators against shared verdicts from reference implementations.
//!
//! `tests/fixtures/contacts/contacts.jsonl` (copied unchanged from the team's shared
//! fixtures; see `SOURCES.md` there) holds 568 emails with verdicts from python-email-validator 2.4.0 and isemail, and
//! 304 phones with verdicts from python-phonenumbers 9.0.43 (see `contacts_meta.json`).
//! An email row's `consensus` is `valid` or `invalid` when both email validators agree
//! (clear-cut), `policy` when they differ or the verdict is a library's choice.
//!
//! Goals: every phone agrees (validity; for valid numbers the type and the E.164 form,
//! parsed with the row's region as the default), and at least 98% of the clear-cut emails
//! agree. Policy emails are reported, with no goal. Every disagreement must be listed in
//! [`KNOWN`] with its reason, so a new one fails the test, and so does an entry that no
//! longer disagrees (the list stays true).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use persona::contacts::{EmailContact, PhoneContact, phone_kind};
use serde::Deserialize;

/// Relative to the crate.
const FIXTURE: &str = "tests/fixtures/contacts/contacts.jsonl";

/// Disagreements we stand by: (kind, value, why ours differs).
const KNOWN: &[(&str, &str, &str)] = &[
    // --- Clear-cut emails ---
    (
        "email",
        "my.\u{FB2C}.address@1111111111222222222233333333334444444444555555555.6666666666777777777788888888889999999999000000000.1111111111222222222233333333334444444444555555555.6666666666777777777788888888889999999999000000000.11111111112222222222333333333344.info",
        // 252 octets as written, so within RFC 5321's 254. python-email-validator measures
        // after NFC, where U+FB2C (3 octets, a composition exclusion) becomes three code
        // points of 6 octets: 255. We count the octets a sender transmits; our
        // dependencies carry no normalization tables to do otherwise.
        "length counted as written, not after NFC",
    ),
    (
        "email",
        "test@iana.co-uk",
        // Both validators check the top-level label's last character only. We require
        // a top-level label of letters (or an A-label): RFC 1123 §2.1 ("the highest-level
        // component label will be alphabetic") and the root zone's rule for every TLD.
        // No TLD can have a hyphen, so the address cannot receive mail.
        "top-level domain must be letters",
    ),
    // --- Policy emails ---
    // RFC 5321 §4.5.3.1.1 limits a local part to 64 octets; python-email-validator
    // accepts longer ones unless `strict` (the verdicts here are not strict). Mail
    // servers may refuse them, and a 65-octet local part is a pasted blob, not a person.
    (
        "email",
        "11111111112222222222333333333344444444445555555555666666666677777@example.com",
        "local part over 64 octets",
    ),
    (
        "email",
        "111111111122222222223333333333444444444455555555556666666666777777@example.com",
        "local part over 64 octets",
    ),
    (
        "email",
        "\u{FB2C}111111122222222223333333333444444444455555555556666666666777777@example.com",
        "local part over 64 octets",
    ),
    (
        "email",
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklmn@iana.org",
        "local part over 64 octets",
    ),
    (
        "email",
        "12345678901234567890123456789012345678901234567890123456789012345@iana.org",
        "local part over 64 octets",
    ),
    // Spaces around an address come from forms and spreadsheets; we trim them (the
    // lookup key is trimmed too) where the validators refuse. Line breaks are refused.
    ("email", " test@iana.org", "surrounding spaces trimmed"),
    ("email", "test@iana.org ", "surrounding spaces trimmed"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    value: String,
    kind: String,
    region: String,
    expected_valid: bool,
    expected_type: String,
    normalized: String,
    #[allow(dead_code)]
    reason: String,
    #[allow(dead_code)]
    source: String,
    consensus: String,
}

/// Agreement in one group of rows.
#[derive(Default)]
struct Tally {
    agree: usize,
    total: usize,
}

impl Tally {
    fn add(&mut self, agrees: bool) {
        self.total += 1;
        self.agree += usize::from(agrees);
    }

    fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            100.0 * self.agree as f64 / self.total as f64
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} = {:.2}%", self.agree, self.total, self.percent())
    }
}

fn rows() -> Vec<Row> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the contact fixtures are missing: cannot read {} ({e}); without them this test \
             cannot check anything, so it fails rather than pass empty.",
            path.display()
        )
    });
    let rows: Vec<Row> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: not a fixture row: {e}", path.display(), i + 1))
        })
        .collect();
    assert!(
        rows.len() > 800,
        "{} holds only {} rows: truncated?",
        path.display(),
        rows.len()
    );
    rows
}

#[test]
fn contacts_agree_with_the_reference_validators() {
    let mut clear_cut = Tally::default();
    let mut policy = Tally::default();
    let mut phones = Tally::default();
    let mut disagreements = Vec::new();

    for row in rows() {
        let (agrees, expected, ours) = match row.kind.as_str() {
            "email" => {
                let c = EmailContact::new(&row.value);
                let agrees = c.valid() == row.expected_valid;
                match row.consensus.as_str() {
                    "valid" | "invalid" => clear_cut.add(agrees),
                    "policy" => policy.add(agrees),
                    other => panic!("{:?}: unknown consensus {other:?}", row.value),
                }
                let ours = match &c.reason {
                    None => "valid".to_owned(),
                    Some(why) => format!("invalid ({why})"),
                };
                (agrees, verdict(row.expected_valid), ours)
            }
            "phone" => {
                let region = (!row.region.is_empty()).then_some(row.region.as_str());
                let p = PhoneContact::new(&row.value, region);
                let expected_kind = row.expected_type.to_ascii_lowercase();
                if row.expected_valid {
                    assert_eq!(
                        phone_kind(&expected_kind),
                        expected_kind,
                        "{:?}: the fixture's type has no name of ours",
                        row.value
                    );
                }
                let agrees = p.valid == row.expected_valid
                    && (!row.expected_valid
                        || (p.kind == Some(expected_kind.as_str())
                            && p.e164.as_deref() == Some(row.normalized.as_str())));
                phones.add(agrees);
                let expected = if row.expected_valid {
                    format!("valid {expected_kind} {}", row.normalized)
                } else {
                    "invalid".to_owned()
                };
                let ours = format!(
                    "{} {} {} (region {:?}, {:?})",
                    verdict(p.valid),
                    p.kind.unwrap_or("-"),
                    p.e164.as_deref().unwrap_or("-"),
                    p.region,
                    p.reason
                );
                (agrees, expected, ours)
            }
            other => panic!("{:?}: unknown kind {other:?}", row.value),
        };
        if !agrees {
            disagreements.push((row.kind, row.value, row.consensus, expected, ours));
        }
    }

    let summary = format!(
        "contact fixtures ({FIXTURE}):\n  \
         emails, clear-cut: {clear_cut} (goal ≥ 98%)\n  \
         emails, policy:    {policy} (no goal)\n  \
         phones:            {phones} (goal 100%)"
    );
    let mut report = String::new();
    writeln!(report, "  disagreements: {}", disagreements.len()).unwrap();
    for (kind, value, consensus, expected, ours) in &disagreements {
        let known = KNOWN
            .iter()
            .find(|(k, v, _)| k == kind && v == value)
            .map_or("NOT IN THE KNOWN LIST", |(_, _, why)| why);
        writeln!(
            report,
            "  - {kind} {value:?} [{consensus}]: expected {expected}; ours {ours} — {known}"
        )
        .unwrap();
    }
    // Shown with `--nocapture`, and replayed by the harness when the test fails.
    println!("{summary}");
    eprintln!("{report}");
    let report = format!("{summary}\n{report}");

    let unknown: Vec<_> = disagreements
        .iter()
        .filter(|(k, v, ..)| !KNOWN.iter().any(|(kk, vv, _)| kk == k && vv == v))
        .map(|(k, v, ..)| format!("{k} {v:?}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "new disagreements (fix them or add them to KNOWN with a reason): {unknown:#?}\n{report}"
    );
    let seen: HashSet<(&str, &str)> = disagreements
        .iter()
        .map(|(k, v, ..)| (k.as_str(), v.as_str()))
        .collect();
    let stale: Vec<_> = KNOWN
        .iter()
        .filter(|(k, v, _)| !seen.contains(&(*k, *v)))
        .collect();
    assert!(
        stale.is_empty(),
        "KNOWN lists rows that now agree (remove them): {stale:#?}\n{report}"
    );
    assert_eq!(
        phones.agree, phones.total,
        "phones must all agree\n{report}"
    );
    assert!(
        clear_cut.percent() >= 98.0,
        "clear-cut emails agree {clear_cut}, below 98%\n{report}"
    );
}

fn verdict(valid: bool) -> String {
    if valid { "valid" } else { "invalid" }.to_owned()
}
