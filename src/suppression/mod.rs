//! Suppression lists: the addresses, whole domains and phones no campaign may reach.
//!
//! Lists belong to the server, not to one database: `global` (the stop list) always
//! exists and every database reads it; a database attaches named lists in its settings.
//! Entries are normalized the way profiles' contacts are (`contacts`): an email
//! lowercased with its domain in IDNA form, a domain in IDNA form (a domain suppresses
//! its subdomains too), a phone in E.164. Lookups read the sets in place, without a
//! lock beyond a shard's, so an entry counts from the next read of any profile.
//! Changes are journaled (`journal`) before they are applied. Uses `contacts`, `error`.

mod journal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use compact_str::CompactString;
use dashmap::DashSet;
use jiff::Timestamp;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::contacts::{self, PhoneContact};
use crate::error::{ErrorCode, Problem};
use journal::{Journal, Op};

pub use journal::JournalError;

/// The stop list every database reads; it cannot be deleted.
pub const GLOBAL: &str = "global";

/// The most entries one request may add or remove.
pub const MAX_ENTRIES: usize = 100_000;

/// Entries to add or remove, as written (`POST|DELETE .../entries`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Entries {
    /// Email addresses.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Domains (`example.com` or `@example.com`); each suppresses its subdomains too.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Phone numbers; international form, or national with `region`.
    #[serde(default)]
    pub phones: Vec<String>,
    /// ISO 3166 region for phones written without a country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// What kind of entry a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An email address.
    Email,
    /// A domain.
    Domain,
    /// A phone number.
    Phone,
}

/// One entry that is not what its kind says, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryError {
    /// `email`, `domain` or `phone`.
    pub kind: Kind,
    /// Its position in its array.
    pub index: usize,
    /// The value as sent.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// The lookup form of a suppression entry, or why it is not one.
pub fn normalize(kind: Kind, raw: &str, region: Option<&str>) -> Result<CompactString, String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err("is empty".into());
    }
    match kind {
        Kind::Email => {
            contacts::check_email(value)
                .map_err(|why| format!("is not a valid email address: {why}"))?;
            Ok(contacts::normalize_email(value).into())
        }
        Kind::Domain => normalize_domain(value),
        Kind::Phone => {
            let phone = PhoneContact::new(value, region);
            match (phone.valid, phone.e164) {
                (true, Some(e164)) => Ok(e164),
                _ => Err(format!(
                    "is not a valid phone number: {}",
                    phone.reason.as_deref().unwrap_or("unknown")
                )),
            }
        }
    }
}

/// A domain in IDNA form: `@` before it and one final dot are accepted and dropped.
fn normalize_domain(value: &str) -> Result<CompactString, String> {
    let d = value.strip_prefix('@').unwrap_or(value);
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.contains('@') {
        return Err("is an email address; list it under `emails`".into());
    }
    // STD3 rules and DNS lengths: letters, digits and hyphens in labels of 1 to 63,
    // 253 in all, so spaces, slashes, empty labels and URLs are refused.
    let ascii = idna::domain_to_ascii_strict(d)
        .map_err(|_| "is not a domain name (letters, digits, hyphens and dots)".to_string())?;
    if ascii.is_empty() || ascii.split('.').any(str::is_empty) {
        return Err("is not a domain name (an empty label)".into());
    }
    // A lone label would suppress a whole top-level domain: far more often a typo.
    if !ascii.contains('.') {
        return Err("is a top-level domain alone; give a domain such as `example.com`".into());
    }
    Ok(ascii.into())
}

impl Entries {
    /// Every entry in lookup form, or every entry that is not valid.
    fn normalize(&self) -> Result<Normalized, Problem> {
        let total = self.emails.len() + self.domains.len() + self.phones.len();
        if total == 0 {
            return Err(Problem::new(
                ErrorCode::InvalidBody,
                "no entries: send `emails`, `domains` or `phones`",
            ));
        }
        if total > MAX_ENTRIES {
            return Err(Problem::new(
                ErrorCode::SuppressionEntryInvalid,
                format!("at most {MAX_ENTRIES} entries a request; got {total}"),
            ));
        }
        if let Some(r) = &self.region
            && !contacts::is_region(r)
        {
            return Err(Problem::new(
                ErrorCode::SuppressionEntryInvalid,
                format!("`{r}` is not an ISO 3166 region such as `PT`"),
            )
            .with("region", r.as_str()));
        }
        let mut out = Normalized::default();
        let mut errors = Vec::new();
        for (kind, values, into) in [
            (Kind::Email, &self.emails, &mut out.emails),
            (Kind::Domain, &self.domains, &mut out.domains),
            (Kind::Phone, &self.phones, &mut out.phones),
        ] {
            for (index, value) in values.iter().enumerate() {
                match normalize(kind, value, self.region.as_deref()) {
                    Ok(v) => into.push(v),
                    Err(reason) => errors.push(EntryError {
                        kind,
                        index,
                        value: value.clone(),
                        reason,
                    }),
                }
            }
        }
        if errors.is_empty() {
            return Ok(out);
        }
        let first = &errors[0];
        let detail = format!(
            "{} entr{} refused, nothing changed; first: {} `{}` {}",
            errors.len(),
            if errors.len() == 1 { "y" } else { "ies" },
            match first.kind {
                Kind::Email => "email",
                Kind::Domain => "domain",
                Kind::Phone => "phone",
            },
            first.value,
            first.reason
        );
        Err(
            Problem::new(ErrorCode::SuppressionEntryInvalid, detail).with(
                "errors",
                serde_json::to_value(&errors).expect("entry errors serialize"),
            ),
        )
    }
}

/// Entries in lookup form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Normalized {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    emails: Vec<CompactString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    domains: Vec<CompactString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    phones: Vec<CompactString>,
}

/// One set of entries with a count kept beside it: `DashSet::len` would lock every
/// shard, and the lookup path asks "is it empty?" on every read.
#[derive(Debug, Default)]
struct Set {
    items: DashSet<CompactString, foldhash::fast::RandomState>,
    len: AtomicUsize,
}

impl Set {
    fn contains(&self, v: &str) -> bool {
        self.len.load(Ordering::Relaxed) != 0 && self.items.contains(v)
    }

    fn insert_all(&self, values: Vec<CompactString>) -> usize {
        let added = values
            .into_iter()
            .filter(|v| self.items.insert(v.clone()))
            .count();
        self.len.fetch_add(added, Ordering::Relaxed);
        added
    }

    fn remove_all(&self, values: &[CompactString]) -> usize {
        let removed = values
            .iter()
            .filter(|v| self.items.remove(v.as_str()).is_some())
            .count();
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// One suppression list.
#[derive(Debug)]
pub struct List {
    name: CompactString,
    meta: RwLock<Meta>,
    emails: Set,
    domains: Set,
    phones: Set,
    // Held while a change is journaled and applied, so the journal's order is the
    // order changes took effect in.
    journal: Mutex<Option<Journal>>,
    // Set (under `journal`'s lock) when the list is deleted: a change that raced the
    // deletion must not be acknowledged.
    deleted: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone)]
struct Meta {
    description: String,
    created_at: Timestamp,
}

/// Entry counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    /// Email addresses.
    pub emails: usize,
    /// Domains.
    pub domains: usize,
    /// Phones.
    pub phones: usize,
}

/// A list as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListView {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Entries by kind.
    pub entries: Counts,
}

impl List {
    fn new(name: &str, meta: Meta, journal: Option<Journal>) -> List {
        List {
            name: name.into(),
            meta: RwLock::new(meta),
            emails: Set::default(),
            domains: Set::default(),
            phones: Set::default(),
            journal: Mutex::new(journal),
            deleted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The list's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the API shows of the list.
    pub fn view(&self) -> ListView {
        let meta = self.meta.read().clone();
        ListView {
            name: self.name.to_string(),
            description: meta.description,
            created_at: meta.created_at,
            entries: self.counts(),
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            emails: self.emails.len(),
            domains: self.domains.len(),
            phones: self.phones.len(),
        }
    }

    /// Whether the list holds this email (lookup form) or a domain above it.
    pub fn has_email(&self, normalized: &str) -> bool {
        if self.emails.contains(normalized) {
            return true;
        }
        if self.domains.len() == 0 {
            return false;
        }
        let Some((_, mut domain)) = normalized.rsplit_once('@') else {
            return false;
        };
        // `a.b.example.com`, then `b.example.com`, `example.com`, `com`.
        loop {
            if self.domains.contains(domain) {
                return true;
            }
            match domain.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => domain = parent,
                _ => return false,
            }
        }
    }

    /// Up to `limit` entries of one kind in lookup form, in byte order after `after`,
    /// and whether more follow. Lists are hash sets (lookups are the hot path), so a
    /// page costs one pass over the kind's entries: an operator's tool, not a feed.
    pub fn entries(
        &self,
        kind: Kind,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<CompactString>, bool) {
        let set = match kind {
            Kind::Email => &self.emails,
            Kind::Domain => &self.domains,
            Kind::Phone => &self.phones,
        };
        let mut page: Vec<CompactString> = set
            .items
            .iter()
            .filter(|e| after.is_none_or(|a| e.key().as_str() > a))
            .map(|e| e.key().clone())
            .collect();
        let more = page.len() > limit;
        if more {
            page.select_nth_unstable(limit);
            page.truncate(limit);
        }
        page.sort_unstable();
        (page, more)
    }

    /// Whether the list holds this phone (E.164).
    pub fn has_phone(&self, e164: &str) -> bool {
        self.phones.contains(e164)
    }

    fn apply(&self, op: &Op) -> Counts {
        match op {
            Op::Create { .. } => Counts::default(),
            Op::Describe { description } => {
                self.meta.write().description = description.clone();
                Counts::default()
            }
            Op::Add(n) => Counts {
                emails: self.emails.insert_all(n.emails.clone()),
                domains: self.domains.insert_all(n.domains.clone()),
                phones: self.phones.insert_all(n.phones.clone()),
            },
            Op::Remove(n) => Counts {
                emails: self.emails.remove_all(&n.emails),
                domains: self.domains.remove_all(&n.domains),
                phones: self.phones.remove_all(&n.phones),
            },
        }
    }

    /// Journals a change, then applies it; answers how many entries it changed.
    fn change(&self, op: Op) -> Result<Counts, Problem> {
        let mut journal = self.journal.lock();
        if self.deleted.load(Ordering::Acquire) {
            return Err(not_found(&self.name));
        }
        if let Some(j) = journal.as_mut() {
            j.append(&op).map_err(|e| storage(&self.name, &e))?;
        }
        Ok(self.apply(&op))
    }

    fn snapshot_ops(&self) -> Vec<Op> {
        let meta = self.meta.read().clone();
        let all = |s: &Set| {
            let mut v: Vec<CompactString> = s.items.iter().map(|e| e.key().clone()).collect();
            v.sort();
            v
        };
        vec![
            Op::Create {
                description: meta.description,
                created_at: meta.created_at,
            },
            Op::Add(Normalized {
                emails: all(&self.emails),
                domains: all(&self.domains),
                phones: all(&self.phones),
            }),
        ]
    }
}

fn storage(list: &str, e: &JournalError) -> Problem {
    Problem::new(
        ErrorCode::StorageFailed,
        format!("suppression list `{list}` could not be written: {e}; nothing changed"),
    )
}

/// What an add or remove did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeView {
    /// Entries that were not there before (add) or were there (remove), by kind.
    pub changed: Counts,
    /// The list after the change.
    pub list: ListView,
}

/// Lists by name. foldhash, not SipHash: every lookup probes it twice per contact, and
/// list names are set by administrators, not by whoever sends traffic.
type ListMap = std::collections::HashMap<CompactString, Arc<List>, foldhash::fast::RandomState>;

/// Every suppression list of the server.
#[derive(Debug)]
pub struct SuppressionLists {
    dir: Option<PathBuf>,
    // Lists come and go rarely and are read on every lookup: a lock-free load of an
    // immutable map, replaced whole under `changes` when one is created or deleted.
    lists: ArcSwap<ListMap>,
    changes: Mutex<()>,
    // Shared by every settings change that attaches lists (from the existence check to
    // the change's apply), exclusive for a list's deletion: no database can attach a
    // list while it goes.
    attachments: tokio::sync::RwLock<()>,
}

/// Why the lists could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("suppression list file {path}: {source}")]
pub struct OpenError {
    path: PathBuf,
    source: JournalError,
}

impl SuppressionLists {
    /// Opens the lists kept under `<data_dir>/suppression/` (memory only for `None`),
    /// creating `global` if it is not there.
    pub fn open(data_dir: Option<&Path>) -> Result<Self, OpenError> {
        let dir = data_dir.map(|d| d.join("suppression"));
        let mut map = ListMap::default();
        if let Some(dir) = &dir {
            for (name, path) in journal::files(dir).map_err(|source| OpenError {
                path: dir.clone(),
                source,
            })? {
                let fail = |source| OpenError {
                    path: path.clone(),
                    source,
                };
                let (ops, journal) = Journal::open(&path).map_err(fail)?;
                let list = replay(&name, &ops).map_err(fail)?;
                *list.journal.lock() = Some(journal);
                // Many changes since the file was written whole: write it whole again,
                // so start-up reads entries once and removed ones are gone from disk.
                if ops.len() > 64 {
                    let fresh = Journal::rewrite(&path, &list.snapshot_ops()).map_err(fail)?;
                    *list.journal.lock() = Some(fresh);
                }
                map.insert(CompactString::from(name), Arc::new(list));
            }
        }
        let lists = SuppressionLists {
            dir,
            lists: ArcSwap::from_pointee(map),
            changes: Mutex::new(()),
            attachments: tokio::sync::RwLock::new(()),
        };
        if lists.get(GLOBAL).is_none() {
            lists
                .put(
                    GLOBAL,
                    Some("The stop list: every database reads it.".into()),
                )
                .map_err(|p| OpenError {
                    path: lists.dir.clone().unwrap_or_default(),
                    source: JournalError::Io(std::io::Error::other(p.detail)),
                })?;
        }
        Ok(lists)
    }

    /// The lock that keeps attaching a list and deleting it apart.
    pub fn attachments(&self) -> &tokio::sync::RwLock<()> {
        &self.attachments
    }

    /// The list called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<List>> {
        self.lists.load().get(name).cloned()
    }

    /// The list called `name`, or `suppression_list_not_found`.
    pub fn find(&self, name: &str) -> Result<Arc<List>, Problem> {
        self.get(name).ok_or_else(|| not_found(name))
    }

    /// Every list, by name.
    pub fn list(&self) -> Vec<ListView> {
        let mut all: Vec<ListView> = self.lists.load().values().map(|l| l.view()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Creates a list, or changes its description; `true` when it was created.
    /// Blocking (fsyncs).
    pub fn put(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<(Arc<List>, bool), Problem> {
        if !crate::schema::is_name(name) {
            return Err(Problem::new(
                ErrorCode::SuppressionListNameInvalid,
                format!("`{name}` is not a list name: 1 to 64 of a-z, 0-9, `_`, `-`"),
            )
            .with("list", name));
        }
        let _g = self.changes.lock();
        if let Some(list) = self.get(name) {
            if let Some(description) = description {
                list.change(Op::Describe { description })?;
            }
            return Ok((list, false));
        }
        let create = Op::Create {
            description: description.unwrap_or_default(),
            created_at: Timestamp::now(),
        };
        let journal = match &self.dir {
            Some(dir) => Some(
                Journal::create(&dir.join(format!("{name}.jsonl")), &create)
                    .map_err(|e| storage(name, &e))?,
            ),
            None => None,
        };
        let Op::Create {
            description,
            created_at,
        } = create
        else {
            unreachable!()
        };
        let list = Arc::new(List::new(
            name,
            Meta {
                description,
                created_at,
            },
            journal,
        ));
        let mut map = (**self.lists.load()).clone();
        map.insert(name.into(), Arc::clone(&list));
        self.lists.store(Arc::new(map));
        Ok((list, true))
    }

    /// Adds entries to a list: all of them, or none if any is not valid. Blocking.
    pub fn add(&self, name: &str, entries: &Entries) -> Result<ChangeView, Problem> {
        let list = self.find(name)?;
        let changed = list.change(Op::Add(entries.normalize()?))?;
        Ok(ChangeView {
            changed,
            list: list.view(),
        })
    }

    /// Removes entries from a list (all, or none if any is not valid). Blocking.
    pub fn remove(&self, name: &str, entries: &Entries) -> Result<ChangeView, Problem> {
        let list = self.find(name)?;
        let changed = list.change(Op::Remove(entries.normalize()?))?;
        Ok(ChangeView {
            changed,
            list: list.view(),
        })
    }

    /// Deletes a list that no database attaches (`attached` of them do; `shown` are the
    /// ones the caller may see, named in the refusal). `global` cannot be deleted.
    /// Blocking.
    pub fn delete(&self, name: &str, attached: usize, shown: &[String]) -> Result<(), Problem> {
        if name == GLOBAL {
            return Err(Problem::new(
                ErrorCode::SuppressionListProtected,
                "the global stop list always exists; remove its entries instead",
            ));
        }
        let _g = self.changes.lock();
        let list = self.find(name)?;
        if attached > 0 {
            return Err(Problem::new(
                ErrorCode::SuppressionListInUse,
                format!(
                    "suppression list `{name}` is attached to {attached} database(s) ({shown:?} among those this key sees); detach it from their settings first"
                ),
            )
            .with("databases", serde_json::json!(shown)));
        }
        {
            // Under the journal's lock: a change that found the list before this point
            // has been journaled; one after it sees `deleted` and answers not found.
            let mut journal = list.journal.lock();
            if let Some(dir) = &self.dir {
                journal::remove(&dir.join(format!("{name}.jsonl")))
                    .map_err(|e| storage(name, &e))?;
            }
            *journal = None;
            list.deleted.store(true, Ordering::Release);
        }
        let mut map = (**self.lists.load()).clone();
        map.remove(name);
        self.lists.store(Arc::new(map));
        Ok(())
    }

    /// The first of `names` (and `global`) that suppresses this email, if any.
    pub fn email(&self, names: &[String], normalized: &str) -> Option<CompactString> {
        self.first(names, |l| l.has_email(normalized))
    }

    /// The first of `names` (and `global`) that suppresses this phone, if any.
    pub fn phone(&self, names: &[String], e164: &str) -> Option<CompactString> {
        self.first(names, |l| l.has_phone(e164))
    }

    fn first(&self, names: &[String], hit: impl Fn(&List) -> bool) -> Option<CompactString> {
        let map = self.lists.load();
        std::iter::once(GLOBAL)
            .chain(names.iter().map(String::as_str).filter(|n| *n != GLOBAL))
            .find(|n| match map.get(*n) {
                Some(l) => hit(l),
                // An attached list that is gone (its file removed by hand) suppresses
                // everyone: reaching people who opted out is the worse mistake.
                None => true,
            })
            .map(CompactString::from)
    }

    /// Fails with `setting_invalid` naming the first of `names` that is not a list.
    pub fn check_exist(&self, names: &[String]) -> Result<(), Problem> {
        let map = self.lists.load();
        match names.iter().find(|n| !map.contains_key(n.as_str())) {
            None => Ok(()),
            Some(missing) => Err(Problem::new(
                ErrorCode::SettingInvalid,
                format!(
                    "suppression list `{missing}` does not exist; create it with PUT /v1/suppression-lists/{missing}"
                ),
            )
            .with("setting", "suppression_lists")),
        }
    }
}

fn replay(name: &str, ops: &[Op]) -> Result<List, JournalError> {
    let Some(Op::Create {
        description,
        created_at,
    }) = ops.first()
    else {
        return Err(JournalError::Corrupt(
            "the first record is not the list's creation".into(),
        ));
    };
    let list = List::new(
        name,
        Meta {
            description: description.clone(),
            created_at: *created_at,
        },
        None,
    );
    for op in &ops[1..] {
        list.apply(op);
    }
    Ok(list)
}

/// The problem for a list that does not exist.
pub fn not_found(name: &str) -> Problem {
    Problem::new(
        ErrorCode::SuppressionListNotFound,
        format!("no suppression list `{name}`"),
    )
    .with("list", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(emails: &[&str], domains: &[&str], phones: &[&str]) -> Entries {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Entries {
            emails: v(emails),
            domains: v(domains),
            phones: v(phones),
            region: None,
        }
    }

    #[test]
    fn entries_normalize_as_profiles_do() {
        assert_eq!(
            normalize(Kind::Email, " Ana@Example.COM ", None).unwrap(),
            "ana@example.com"
        );
        assert_eq!(
            normalize(Kind::Domain, "@Bücher.example.", None).unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normalize(Kind::Phone, "912 345 678", Some("PT")).unwrap(),
            "+351912345678"
        );
        for (kind, bad) in [
            (Kind::Email, "not an email"),
            (Kind::Email, "ana@[127.0.0.1]"),
            (Kind::Domain, "ana@example.com"),
            (Kind::Domain, "exa mple.com"),
            (Kind::Domain, "https://example.com/"),
            (Kind::Domain, "a..b"),
            (Kind::Domain, ""),
            (Kind::Domain, "com"),
            (Kind::Phone, "12"),
            (Kind::Phone, "912 345 678"),
            (Kind::Phone, "+1 555 CALL NOW"),
        ] {
            assert!(normalize(kind, bad, None).is_err(), "{kind:?} {bad:?}");
        }
    }

    #[test]
    fn a_bad_entry_changes_nothing_and_domains_cover_subdomains() {
        let lists = SuppressionLists::open(None).unwrap();
        lists.put("partners", None).unwrap();
        let err = lists
            .add(
                "partners",
                &entries(&["a@b.pt", "nope"], &[], &["+351912345678"]),
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SuppressionEntryInvalid);
        assert_eq!(lists.find("partners").unwrap().counts(), Counts::default());
        lists
            .add(
                "partners",
                &entries(&["A@B.pt"], &["example.com"], &["+351 912 345 678"]),
            )
            .unwrap();
        let names = vec!["partners".to_string()];
        assert!(lists.email(&names, "a@b.pt").is_some());
        assert!(lists.email(&names, "x@mail.example.com").is_some());
        assert!(lists.email(&names, "x@example.community").is_none());
        assert!(lists.email(&[], "a@b.pt").is_none(), "not attached");
        assert!(lists.phone(&names, "+351912345678").is_some());
        lists
            .remove("partners", &entries(&[], &["EXAMPLE.com"], &[]))
            .unwrap();
        assert!(lists.email(&names, "x@mail.example.com").is_none());
        assert_eq!(
            lists
                .delete("partners", 1, &["shop".into()])
                .unwrap_err()
                .code,
            ErrorCode::SuppressionListInUse
        );
        assert_eq!(
            lists.delete(GLOBAL, 0, &[]).unwrap_err().code,
            ErrorCode::SuppressionListProtected
        );
        let stale = lists.find("partners").unwrap();
        lists.delete("partners", 0, &[]).unwrap();
        assert!(lists.get("partners").is_none());
        // A change that found the list before it went is refused, not lost.
        let late = Op::Add(entries(&["z@b.pt"], &[], &[]).normalize().unwrap());
        assert_eq!(
            stale.change(late).unwrap_err().code,
            ErrorCode::SuppressionListNotFound
        );
        // An attached list that is gone suppresses everyone.
        assert_eq!(
            lists.email(&names, "anyone@else.pt").as_deref(),
            Some("partners")
        );
    }

    #[test]
    fn lists_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let lists = SuppressionLists::open(Some(dir.path())).unwrap();
            lists.put("vip", Some("do not mail".into())).unwrap();
            lists
                .add(
                    "vip",
                    &entries(&["a@b.pt", "c@d.pt"], &["spam.example"], &[]),
                )
                .unwrap();
            lists
                .remove("vip", &entries(&["c@d.pt"], &[], &[]))
                .unwrap();
            lists
                .add(GLOBAL, &entries(&[], &[], &["+351912345678"]))
                .unwrap();
            lists.put("gone", None).unwrap();
            lists.delete("gone", 0, &[]).unwrap();
        }
        let lists = SuppressionLists::open(Some(dir.path())).unwrap();
        let names: Vec<String> = lists.list().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["global", "vip"]);
        let vip = lists.find("vip").unwrap();
        assert_eq!(vip.view().description, "do not mail");
        assert_eq!(
            vip.counts(),
            Counts {
                emails: 1,
                domains: 1,
                phones: 0
            }
        );
        assert!(vip.has_email("x@spam.example"));
        assert!(lists.phone(&[], "+351912345678").is_some());
    }
}
