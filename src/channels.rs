//! Channel eligibility: whether a customer may be reached by email, SMS and push now,
//! and if not, why.
//!
//! Each channel is checked in a fixed order and the first failing check is the reason:
//!
//! | reason | email | sms | push |
//! | --- | --- | --- | --- |
//! | `no_contact` | no email | no phone | no `device` identifier |
//! | `invalid_contact` | email flagged invalid | phone flagged invalid | — |
//! | `landline` | — | a `fixed_line` number | — |
//! | `not_mobile` | — | toll-free, premium, shared-cost, pager, UAN, voicemail... | — |
//! | `suppressed` | the address or its domain on an attached list or `global` | the number on one | — |
//! | `unsubscribed` | every subscription on the channel is `unsubscribed` | same | same |
//! | `not_subscribed` | no subscription on the channel | same | same |
//!
//! SMS goes to `mobile`, `fixed_line_or_mobile` (libphonenumber cannot tell them apart
//! in regions such as the US, and refusing them would silence whole countries),
//! `personal_number` and `voip` numbers. One `subscribed` record on the channel (for any
//! resource and category, or the ones an audience asks for) is enough. Reads the
//! profile's bytes and the suppression lists; pure otherwise.

use serde::Serialize;

use crate::schema::{Channel, SubscriptionStatus};
use crate::store::{ProfileStore, ProfileView};
use crate::suppression::SuppressionLists;

/// Why a channel is not eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No address or number for the channel.
    NoContact,
    /// The address or number is flagged invalid.
    InvalidContact,
    /// A fixed-line number cannot take SMS.
    Landline,
    /// A number of a type that takes no SMS (toll-free, premium rate...).
    NotMobile,
    /// On a suppression list.
    Suppressed,
    /// Every subscription on the channel was withdrawn.
    Unsubscribed,
    /// No subscription on the channel.
    NotSubscribed,
}

/// Every reason, in the order they are checked (for documentation and filters).
pub const REASONS: &[&str] = &[
    "no_contact",
    "invalid_contact",
    "landline",
    "not_mobile",
    "suppressed",
    "unsubscribed",
    "not_subscribed",
];

impl Reason {
    /// The wire name (`no_contact`...), as serde writes it.
    pub fn as_str(self) -> &'static str {
        REASONS[self as usize]
    }
}

/// The phone types that take SMS.
const SMS_TYPES: &[&str] = &["mobile", "fixed_line_or_mobile", "personal_number", "voip"];

/// One channel's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// May be sent to now.
    pub eligible: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The suppression list that holds the contact (with `suppressed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
}

impl Verdict {
    const YES: Verdict = Verdict {
        eligible: true,
        reason: None,
        list: None,
    };

    fn no(reason: Reason) -> Verdict {
        Verdict {
            eligible: false,
            reason: Some(reason),
            list: None,
        }
    }
}

/// `channels`: email, sms and push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channels {
    /// Email.
    pub email: Verdict,
    /// SMS.
    pub sms: Verdict,
    /// Push.
    pub push: Verdict,
}

/// Which subscriptions count: all (the document), or one resource and category (an
/// audience); `ignore_subscriptions` for watchers, who get every campaign.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Only subscriptions to this resource.
    pub resource: Option<&'a str>,
    /// Only subscriptions in this category.
    pub category: Option<&'a str>,
    /// Contacts and suppression decide alone.
    pub ignore_subscriptions: bool,
}

/// The suppression lists a database reads: `global` and its attached ones.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// The server's lists.
    pub lists: &'a SuppressionLists,
    /// The database's `suppression_lists` setting.
    pub attached: &'a [String],
}

/// The namespace of the identifier that makes push reachable.
pub const PUSH_NAMESPACE: &str = "device";

/// One channel's verdict for a profile.
pub fn verdict(
    p: &ProfileView<'_>,
    channel: Channel,
    reach: Reach<'_>,
    scope: Scope<'_>,
) -> Verdict {
    if let Err(v) = contact(p, channel, reach) {
        return v;
    }
    if scope.ignore_subscriptions {
        return Verdict::YES;
    }
    subscribed(consents(p, scope)[channel as usize])
}

/// What the subscriptions in `scope` say per channel (email, sms, push): any
/// subscribed, only withdrawn ones, or none; read in one pass over the records.
fn consents(p: &ProfileView<'_>, scope: Scope<'_>) -> [Option<SubscriptionStatus>; 3] {
    let mut out = [None; 3];
    for s in p.subscriptions() {
        if scope.resource.is_some_and(|r| r != s.resource)
            || scope.category.is_some_and(|c| c != s.category)
        {
            continue;
        }
        let slot = &mut out[s.channel as usize];
        if *slot != Some(SubscriptionStatus::Subscribed) {
            *slot = Some(s.status);
        }
    }
    out
}

fn subscribed(state: Option<SubscriptionStatus>) -> Verdict {
    match state {
        Some(SubscriptionStatus::Subscribed) => Verdict::YES,
        Some(SubscriptionStatus::Unsubscribed) => Verdict::no(Reason::Unsubscribed),
        None => Verdict::no(Reason::NotSubscribed),
    }
}

/// Whether the profile has a reachable contact for the channel, or the verdict if not.
fn contact(p: &ProfileView<'_>, channel: Channel, reach: Reach<'_>) -> Result<(), Verdict> {
    match channel {
        Channel::Email => email(p, reach),
        Channel::Sms => sms(p, reach),
        Channel::Push if p.external_ids().any(|(ns, _)| ns == PUSH_NAMESPACE) => Ok(()),
        Channel::Push => Err(Verdict::no(Reason::NoContact)),
    }
}

fn email(p: &ProfileView<'_>, reach: Reach<'_>) -> Result<(), Verdict> {
    let Some(e) = &p.email else {
        return Err(Verdict::no(Reason::NoContact));
    };
    if e.reason.is_some() {
        return Err(Verdict::no(Reason::InvalidContact));
    }
    match reach.lists.email(reach.attached, e.normalized) {
        Some(list) => Err(suppressed(&list)),
        None => Ok(()),
    }
}

fn sms(p: &ProfileView<'_>, reach: Reach<'_>) -> Result<(), Verdict> {
    let Some(ph) = &p.phone else {
        return Err(Verdict::no(Reason::NoContact));
    };
    let (true, Some(e164)) = (ph.valid, ph.e164) else {
        return Err(Verdict::no(Reason::InvalidContact));
    };
    match ph.kind {
        Some("fixed_line") => return Err(Verdict::no(Reason::Landline)),
        Some(k) if SMS_TYPES.contains(&k) => {}
        _ => return Err(Verdict::no(Reason::NotMobile)),
    }
    match reach.lists.phone(reach.attached, e164) {
        Some(list) => Err(suppressed(&list)),
        None => Ok(()),
    }
}

fn suppressed(list: &str) -> Verdict {
    Verdict {
        eligible: false,
        reason: Some(Reason::Suppressed),
        list: Some(list.to_owned()),
    }
}

/// All three channels of a profile, as the document shows them.
pub fn channels(p: &ProfileView<'_>, reach: Reach<'_>) -> Channels {
    let contacts = [Channel::Email, Channel::Sms, Channel::Push].map(|c| contact(p, c, reach));
    // One pass over the subscriptions for all three, and none without a contact.
    let states = if contacts.iter().any(Result::is_ok) {
        consents(p, Scope::default())
    } else {
        [None; 3]
    };
    let [email, sms, push] = [0, 1, 2].map(|i| match &contacts[i] {
        Err(v) => v.clone(),
        Ok(()) => subscribed(states[i]),
    });
    Channels { email, sms, push }
}

/// One profile an audience reaches, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The profile's database.
    pub database: String,
    /// The profile.
    pub customer_id: String,
    /// The email (normalized), the phone (E.164) or the device id sent to.
    pub address: String,
    /// Whether the profile is in the audience as a watcher.
    pub watcher: bool,
}

/// Where a channel sends to on a profile that is eligible on it.
fn address(p: &ProfileView<'_>, channel: Channel) -> Option<String> {
    match channel {
        Channel::Email => p.email.as_ref().map(|e| e.normalized.to_owned()),
        Channel::Sms => p.phone.as_ref().and_then(|ph| ph.e164).map(str::to_owned),
        Channel::Push => p
            .external_ids()
            .find(|(ns, _)| *ns == PUSH_NAMESPACE)
            .map(|(_, v)| v.to_owned()),
    }
}

/// Profiles of one database eligible on `channel` in `scope`, oldest first, from after
/// `after`: up to `limit` of them, scanning at most `budget` profiles (taken from it),
/// and where to go on (`None`: the database is done). A sparse audience may end a page
/// short, with a cursor, rather than scan a whole store for one request.
#[allow(clippy::too_many_arguments)]
pub fn recipients(
    database: &str,
    store: &ProfileStore,
    channel: Channel,
    reach: Reach<'_>,
    scope: Scope<'_>,
    mut after: Option<ulid::Ulid>,
    limit: usize,
    budget: &mut usize,
) -> (Vec<Recipient>, Option<ulid::Ulid>) {
    const SCAN: usize = 1000;
    let mut out = Vec::new();
    loop {
        let (page, next) = store.page(after, SCAN.min((*budget).max(1)));
        for p in &page {
            let v = p.view();
            *budget = budget.saturating_sub(1);
            if verdict(&v, channel, reach, scope).eligible
                && let Some(address) = address(&v, channel)
            {
                out.push(Recipient {
                    database: database.to_owned(),
                    customer_id: v.customer_id.to_owned(),
                    address,
                    watcher: scope.ignore_subscriptions,
                });
            }
            // More may follow this one, even if it ends the store's page: the next
            // request goes on after it (at worst finding nothing).
            if out.len() == limit || *budget == 0 {
                return (out, Some(v.id()));
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return (out, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::{EmailContact, PhoneContact};
    use crate::schema::Source;
    use crate::store::{Packed, Profile, Subscription};
    use crate::suppression::{Entries, GLOBAL};

    #[test]
    fn reason_names_are_serdes() {
        use Reason::*;
        for r in [
            NoContact,
            InvalidContact,
            Landline,
            NotMobile,
            Suppressed,
            Unsubscribed,
            NotSubscribed,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    fn profile(email: Option<&str>, phone: Option<&str>) -> Profile {
        let mut p = Profile::new("c".into(), jiff::Timestamp::UNIX_EPOCH);
        p.email = email.map(EmailContact::new);
        p.phone = phone.map(|n| PhoneContact::new(n, Some("US")));
        p
    }

    fn sub(p: &mut Profile, channel: Channel, status: SubscriptionStatus, secs: i64) {
        p.record_subscription(Subscription {
            resource: "blog".into(),
            channel,
            category: "news".into(),
            status,
            at: jiff::Timestamp::from_second(secs).unwrap(),
            source: Source::Api,
        });
    }

    fn reasons(p: &Profile, lists: &SuppressionLists, attached: &[String]) -> [Option<Reason>; 3] {
        let packed = Packed::encode(p);
        let c = channels(&packed.view(), Reach { lists, attached });
        [c.email.reason, c.sms.reason, c.push.reason]
    }

    #[test]
    fn each_reason_in_its_order() {
        let lists = SuppressionLists::open(None).unwrap();
        let none: &[String] = &[];
        use Reason::*;
        assert_eq!(
            reasons(&profile(None, None), &lists, none),
            [Some(NoContact); 3]
        );
        let mut p = profile(Some("ana@"), Some("12"));
        assert_eq!(reasons(&p, &lists, none)[..2], [Some(InvalidContact); 2]);
        p = profile(Some("ana@example.com"), Some("+1 800 234 5678"));
        assert_eq!(
            reasons(&p, &lists, none)[..2],
            [Some(NotSubscribed), Some(NotMobile)]
        );
        p = profile(Some("ana@example.com"), Some("+351 212 345 678"));
        assert_eq!(reasons(&p, &lists, none)[1], Some(Landline));
        // A US number is fixed_line_or_mobile: SMS may go.
        p = profile(Some("ana@example.com"), Some("(201) 555-0123"));
        p.external_ids.push(("device".into(), "tok".into()));
        sub(&mut p, Channel::Email, SubscriptionStatus::Subscribed, 10);
        sub(&mut p, Channel::Sms, SubscriptionStatus::Subscribed, 10);
        sub(&mut p, Channel::Push, SubscriptionStatus::Unsubscribed, 10);
        assert_eq!(reasons(&p, &lists, none), [None, None, Some(Unsubscribed)]);
        // An older unsubscribe arriving late changes nothing; a newer one does.
        sub(&mut p, Channel::Email, SubscriptionStatus::Unsubscribed, 5);
        assert_eq!(reasons(&p, &lists, none)[0], None);
        sub(&mut p, Channel::Email, SubscriptionStatus::Unsubscribed, 20);
        assert_eq!(reasons(&p, &lists, none)[0], Some(Unsubscribed));
        sub(&mut p, Channel::Email, SubscriptionStatus::Subscribed, 30);
        // Suppression beats a subscription, from global or an attached list only.
        lists.put("partners", None).unwrap();
        let add = |list: &str, e: Entries| lists.add(list, &e).unwrap();
        add(
            "partners",
            Entries {
                domains: vec!["example.com".into()],
                ..Entries::default()
            },
        );
        assert_eq!(reasons(&p, &lists, none)[0], None);
        let attached = vec!["partners".to_string()];
        let packed = Packed::encode(&p);
        let c = channels(
            &packed.view(),
            Reach {
                lists: &lists,
                attached: &attached,
            },
        );
        assert_eq!(
            (c.email.reason, c.email.list.as_deref()),
            (Some(Suppressed), Some("partners"))
        );
        add(
            GLOBAL,
            Entries {
                phones: vec!["+1 201 555 0123".into()],
                ..Entries::default()
            },
        );
        assert_eq!(reasons(&p, &lists, none)[1], Some(Suppressed));
    }

    #[test]
    fn a_scope_counts_only_its_resource_and_watchers_ignore_subscriptions() {
        let lists = SuppressionLists::open(None).unwrap();
        let reach = Reach {
            lists: &lists,
            attached: &[],
        };
        let mut p = profile(Some("ana@example.com"), None);
        sub(&mut p, Channel::Email, SubscriptionStatus::Subscribed, 1);
        let packed = Packed::encode(&p);
        let v = packed.view();
        let other = Scope {
            resource: Some("shop"),
            ..Scope::default()
        };
        assert_eq!(
            verdict(&v, Channel::Email, reach, other).reason,
            Some(Reason::NotSubscribed)
        );
        let watcher = Scope {
            ignore_subscriptions: true,
            ..other
        };
        assert!(verdict(&v, Channel::Email, reach, watcher).eligible);
    }
}
