//! Contact validation without HTTP: what a profile write pays to check and key its email
//! and phone (`contacts::EmailContact::new` and `contacts::PhoneContact::new`).
//!
//! The data: 1,000 distinct emails (common first/last names, a dozen real-world domains,
//! some with `+tags`, upper case or an IDN domain) and 1,000 distinct phones in national
//! format from seven regions (PT, ES, FR, DE, GB, US, BR; mobiles and fixed lines), each
//! parsed with its own region as the default, as a database with that `default_region`
//! would. Both lists are cycled, so every call sees a different value.
//!
//! Groups (time per profile write, `Throughput::Elements(1)`):
//! - `contacts_write/email_and_phone`: both checks, what a write with both fields costs;
//! - `contacts_write/email` and `contacts_write/phone`: each apart;
//! - `contacts_write/phone_e164`: the same phones given in E.164 with no default region
//!   (the other common shape of imported data).
//!
//! Run with `cargo bench --bench contacts`.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use persona::contacts::{EmailContact, PhoneContact};

const N: u64 = 1_000;

const FIRST: &[&str] = &[
    "ana", "beatriz", "carla", "diana", "eva", "joana", "marta", "sofia", "andre", "bruno",
    "carlos", "daniel", "joao", "luis", "miguel", "tiago", "emma", "lukas", "chloe", "james",
];
const LAST: &[&str] = &[
    "silva", "santos", "ferreira", "pereira", "costa", "martins", "garcia", "lopez", "martin",
    "bernard", "muller", "schmidt", "smith", "jones", "johnson", "brown", "souza", "oliveira",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "yahoo.co.uk",
    "icloud.com",
    "sapo.pt",
    "web.de",
    "orange.fr",
    "telefonica.es",
    "empresa.com.br",
    "mail.example-corp.com",
    "bücher.de",
];

/// Email `i`: `first.last[N][+tag]@domain`, sometimes capitalised as people type it.
fn email(i: u64) -> String {
    let h = common::mix(i);
    let first = FIRST[(h % FIRST.len() as u64) as usize];
    let last = LAST[((h >> 8) % LAST.len() as u64) as usize];
    let domain = DOMAINS[((h >> 16) % DOMAINS.len() as u64) as usize];
    let tag = if (h >> 24).is_multiple_of(10) {
        "+news"
    } else {
        ""
    };
    let local = format!("{first}.{last}{i}{tag}");
    if (h >> 32).is_multiple_of(5) {
        let mut c = local.chars();
        let head: String = c.next().into_iter().flat_map(char::to_uppercase).collect();
        format!("{head}{}@{domain}", c.as_str())
    } else {
        format!("{local}@{domain}")
    }
}

/// Phone `i` in national format with its region; all valid numbers of their region.
fn phone(i: u64) -> (String, &'static str) {
    let h = common::mix(i ^ 0x9E37);
    let d = |k: u32, n: u32| (h >> k) % 10u64.pow(n);
    match i % 10 {
        0 | 1 => (
            format!(
                "9{}{} {:03} {:03}",
                [1, 2, 3, 6][(h % 4) as usize],
                d(4, 1),
                d(8, 3),
                d(20, 3)
            ),
            "PT",
        ),
        2 => (
            format!("612 {:02} {:02} {:02}", d(8, 2), d(16, 2), d(24, 2)),
            "ES",
        ),
        3 => (
            format!(
                "06 {:02} {:02} {:02} {:02}",
                // 0639 and 069x are not metropolitan mobiles.
                10 + d(8, 2) % 20,
                d(16, 2),
                d(24, 2),
                d(32, 2)
            ),
            "FR",
        ),
        4 => (format!("030 {:08}", d(8, 8)), "DE"),
        5 => (format!("0151 {:08}", d(8, 8)), "DE"),
        6 => (format!("07400 {:06}", d(8, 6)), "GB"),
        7 => (format!("020 {:04} {:04}", 7000 + d(8, 3), d(20, 4)), "GB"),
        8 => (
            format!(
                "({}) {}{:02}-{:04}",
                ["201", "212", "415", "617"][(h % 4) as usize],
                2 + d(8, 1) % 8,
                d(12, 2),
                d(20, 4)
            ),
            "US",
        ),
        _ => (format!("(11) 9{:04}-{:04}", d(8, 4), d(20, 4)), "BR"),
    }
}

fn contacts(c: &mut Criterion) {
    let emails: Vec<String> = (0..N).map(email).collect();
    let phones: Vec<(String, &str)> = (0..N).map(phone).collect();
    let e164: Vec<String> = phones
        .iter()
        .map(|(p, r)| PhoneContact::new(p, Some(r)).e164.expect("parses").into())
        .collect();
    // The bench is about the common case: check the generator made what it meant to.
    let bad_emails: Vec<&String> = emails
        .iter()
        .filter(|e| !EmailContact::new(e).valid())
        .collect();
    let bad_phones: Vec<&(String, &str)> = phones
        .iter()
        .filter(|(p, r)| !PhoneContact::new(p, Some(r)).valid)
        .collect();
    assert!(
        bad_emails.is_empty(),
        "invalid generated emails: {bad_emails:?}"
    );
    assert!(
        bad_phones.is_empty(),
        "invalid generated phones: {bad_phones:?}"
    );
    println!(
        "contacts bench: {} emails, {} phones, e.g. {:?}, {:?} → {:?}",
        emails.len(),
        phones.len(),
        emails[0],
        phones[0],
        e164[0]
    );

    let n = N as usize;
    let mut g = c.benchmark_group("contacts_write");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("email_and_phone", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            let (p, r) = &phones[i];
            (
                black_box(EmailContact::new(black_box(&emails[i]))),
                black_box(PhoneContact::new(black_box(p), Some(r))),
            )
        })
    });
    g.bench_function("email", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(EmailContact::new(black_box(&emails[i])))
        })
    });
    g.bench_function("phone", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            let (p, r) = &phones[i];
            black_box(PhoneContact::new(black_box(p), Some(r)))
        })
    });
    g.bench_function("phone_e164", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(PhoneContact::new(black_box(&e164[i]), None))
        })
    });
    g.finish();
}

criterion_group!(benches, contacts);
criterion_main!(benches);
