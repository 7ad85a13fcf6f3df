//! A parsed filter typed against a database's schema, then evaluated on profiles.
//!
//! Typing turns every path into what the profile document shows there (a field, or a
//! member such as `stats.receipts_count`, `contacts.phone.type`, `channels.sms.eligible`)
//! with the type of its values, and every literal into a value of that type: a quoted
//! `YYYY-MM-DD` compared with a date field is a date, a number compared with a string
//! field is an error naming the field. Evaluation reads the same document a lookup
//! shows (the projection of the paths the filter names), so a filter means exactly what
//! the document says; `!=` is exactly `NOT =`, so a profile without a value is "not
//! Lisbon". Pure apart from reading the document it is handed.

use std::cmp::Ordering;

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::Value as Json;

use super::filter::{Expr, FilterError, Literal, Op, Path};
use crate::schema::{FieldId, FieldType, Schema, Value};
use std::sync::Arc;

use crate::store::columns::Scan;
use crate::store::{Column, ColumnKind, Head, ProfileView, Slot, ValueRef};

/// What a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
    Bool,
    Date,
    DateTime,
    /// A list of texts: `tags`, tag fields, arrays.
    Texts,
    /// Something only `EXISTS` asks of: objects, lists of objects.
    Opaque,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Number => "a number",
            Kind::Text => "text",
            Kind::Bool => "a boolean",
            Kind::Date => "a date",
            Kind::DateTime => "a date and time",
            Kind::Texts => "a list of texts",
            Kind::Opaque => "a structure",
        }
    }
}

/// A literal of the path's type.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Num(f64),
    Text(String),
    Bool(bool),
    Date(Date),
    Time(Timestamp),
}

/// Where in the document a path's value is, and what it holds.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// Keys into the document (`["fields", "city"]`, `["stats", "receipts_count"]`).
    keys: Vec<String>,
    /// The path as a projection asks for it (`city`, `stats.receipts_count`).
    projection: String,
    kind: Kind,
    /// As written, for messages.
    shown: String,
    /// How to read it straight from the profile's bytes, when no derived value is
    /// involved: the fast path (no document rendered).
    direct: Option<Direct>,
    /// How to read it from the document.
    via: Via,
}

/// How a path's value is read from the document.
#[derive(Debug, Clone, PartialEq)]
enum Via {
    /// At `keys`.
    Keys,
    /// `interests`: the categories of the `interests` list.
    Interests,
    /// `subscriptions.<resource>.<channel>[.<category>]`: the status of that
    /// subscription's current record in the `subscriptions` list (the category is
    /// `default` when left out, as in writes).
    Subscription {
        resource: String,
        channel: String,
        category: String,
    },
}

/// A value read straight from a profile's bytes.
#[derive(Debug, Clone, PartialEq)]
enum Direct {
    CustomerId,
    Created,
    Updated,
    Tags,
    /// `identifiers.<ns>` (`email` and `phone` are the contacts' lookup forms).
    Identifier(String),
    /// A field, with the default the document shows when it has no value.
    Field(String, FieldId, Option<Fallback>),
}

/// A field's default, as the document would show it.
#[derive(Debug, Clone, PartialEq)]
enum Fallback {
    One(Val),
    Texts(Vec<String>),
}

/// A filter typed against a schema, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    node: Node,
    projection: Vec<String>,
    direct: bool,
    fields_only: bool,
    activity: bool,
    volatile: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Compare(Target, Op, Val),
    In(Target, Vec<Val>),
    Contains(Target, Val),
    Exists(Target),
}

const STATS_TIMES: &[&str] = &["first_receipt_at", "last_receipt_at"];
const STATS_NUMBERS: &[&str] = &[
    "receipts_count",
    "receipts_total",
    "last_receipt_total",
    "average_receipt",
    "average_items",
    "days_since_first_receipt",
    "days_since_last_receipt",
    "days_since_registration",
];
const BONUS_NUMBERS: &[&str] = &[
    "active",
    "pending_activation",
    "pending_deactivation",
    "next_deactivation_amount",
];

fn at(path: &Path, message: String) -> FilterError {
    FilterError {
        column: path.column,
        message,
    }
}

/// What a path names in the document, or why it names nothing.
fn target(path: &Path, schema: &Schema) -> Result<Target, FilterError> {
    let names: Vec<&str> = path.names.iter().map(String::as_str).collect();
    let shown = path.to_string();
    let member = |kind: Kind| Target {
        keys: path.names.clone(),
        projection: shown.clone(),
        kind,
        shown: shown.clone(),
        direct: match names.as_slice() {
            ["tags"] => Some(Direct::Tags),
            ["identifiers", ns] => Some(Direct::Identifier((*ns).to_owned())),
            ["created_at"] => Some(Direct::Created),
            ["updated_at"] => Some(Direct::Updated),
            _ => None,
        },
        via: Via::Keys,
    };
    let field = |name: &str| -> Result<Target, FilterError> {
        let def = schema.get(name).ok_or_else(|| {
            at(
                path,
                format!("`{name}` is neither a field of this database nor a member of the profile document"),
            )
        })?;
        let kind = match def.ty {
            FieldType::Integer | FieldType::Float => Kind::Number,
            FieldType::String | FieldType::List | FieldType::Ip => Kind::Text,
            FieldType::Boolean => Kind::Bool,
            FieldType::Date => Kind::Date,
            FieldType::DateTime => Kind::DateTime,
            FieldType::Tags | FieldType::Array => Kind::Texts,
            FieldType::Object => Kind::Opaque,
        };
        let fallback = def.default.as_ref().and_then(|d| match d {
            Value::Int(i) => Some(Fallback::One(Val::Num(*i as f64))),
            Value::Float(f) => Some(Fallback::One(Val::Num(*f))),
            Value::Str(t) => Some(Fallback::One(Val::Text(t.to_string()))),
            Value::Bool(b) => Some(Fallback::One(Val::Bool(*b))),
            Value::Date(d) => Some(Fallback::One(Val::Date(*d))),
            Value::DateTime(t) => Some(Fallback::One(Val::Time(*t))),
            Value::Ip(ip) => Some(Fallback::One(Val::Text(ip.to_string()))),
            Value::Tags(t) => Some(Fallback::Texts(t.iter().map(|x| x.to_string()).collect())),
            Value::Json(_) => None,
        });
        let direct = (!matches!(def.ty, FieldType::Object | FieldType::Array))
            .then(|| Direct::Field(name.to_owned(), def.id, fallback));
        Ok(Target {
            keys: vec!["fields".into(), name.into()],
            projection: name.into(),
            kind,
            shown: name.into(),
            direct,
            via: Via::Keys,
        })
    };
    let bad = |why: &str| Err(at(path, format!("`{shown}` {why}")));
    match names.as_slice() {
        ["customer_id"] | ["id"] => Ok(Target {
            keys: path.names.clone(),
            projection: String::new(),
            kind: Kind::Text,
            direct: (names[0] == "customer_id").then_some(Direct::CustomerId),
            shown,
            via: Via::Keys,
        }),
        ["fields", name] => field(name),
        ["tags"] => Ok(member(Kind::Texts)),
        ["identifiers", _] => Ok(member(Kind::Text)),
        ["contacts", "email" | "phone"] => Ok(member(Kind::Opaque)),
        ["contacts", "email" | "phone", "valid"] => Ok(member(Kind::Bool)),
        ["contacts", "email", "value" | "normalized" | "reason"] => Ok(member(Kind::Text)),
        [
            "contacts",
            "phone",
            "value" | "e164" | "region" | "type" | "reason",
        ] => Ok(member(Kind::Text)),
        ["channels", "email" | "sms" | "push", "eligible"] => Ok(member(Kind::Bool)),
        ["channels", "email" | "sms" | "push", "reason" | "list"] => Ok(member(Kind::Text)),
        ["stats", k] if STATS_NUMBERS.contains(k) => Ok(member(Kind::Number)),
        ["stats", k] if STATS_TIMES.contains(k) => Ok(member(Kind::DateTime)),
        ["rfm", "r" | "f" | "m"] => Ok(member(Kind::Number)),
        ["rfm", "segment"] => Ok(member(Kind::Text)),
        ["rfm"] => Ok(member(Kind::Opaque)),
        ["bonuses", k] if BONUS_NUMBERS.contains(k) => Ok(member(Kind::Number)),
        ["bonuses", "next_deactivation_at"] => Ok(member(Kind::DateTime)),
        ["created_at" | "updated_at"] => Ok(member(Kind::DateTime)),
        ["interests"] => Ok(Target {
            via: Via::Interests,
            ..member(Kind::Texts)
        }),
        ["subscriptions", resource, channel, rest @ ..] if rest.len() <= 1 => {
            if !matches!(*channel, "email" | "sms" | "push") {
                return bad("names no channel: the third name is `email`, `sms` or `push`");
            }
            Ok(Target {
                via: Via::Subscription {
                    resource: (*resource).to_owned(),
                    channel: (*channel).to_owned(),
                    category: rest
                        .first()
                        .map_or("default".to_owned(), |c| (*c).to_owned()),
                },
                projection: "subscriptions".into(),
                ..member(Kind::Text)
            })
        }
        [
            "favorite_stores" | "abandoned_cart" | "mailings" | "promo_codes" | "polls"
            | "subscriptions",
        ] => Ok(member(Kind::Opaque)),
        ["stats" | "rfm" | "bonuses" | "contacts" | "channels", ..] => {
            bad("is not a member of the profile document")
        }
        [name] => field(name),
        _ => bad("is not a field or a member of the profile document"),
    }
}

/// A literal as a value of `t`'s type, or an error naming the path.
fn typed(t: &Target, lit: &Literal, path: &Path) -> Result<Val, FilterError> {
    let mismatch = |what: &str| {
        Err(at(
            path,
            format!(
                "`{}` holds {}, so it cannot be compared with {what}",
                t.shown,
                t.kind.name()
            ),
        ))
    };
    Ok(match (t.kind, lit) {
        (_, Literal::Null) => Val::Null,
        (Kind::Number, Literal::Num(n)) => Val::Num(*n),
        (Kind::Text | Kind::Texts, Literal::Str(s)) => Val::Text(s.clone()),
        (Kind::Bool, Literal::Bool(b)) => Val::Bool(*b),
        (Kind::Date, Literal::Str(s)) => Val::Date(s.parse().map_err(|_| {
            at(path, format!("`{}` holds dates: write one as \"YYYY-MM-DD\", not {s:?}", t.shown))
        })?),
        (Kind::DateTime, Literal::Str(s)) => Val::Time(instant(s).ok_or_else(|| {
            at(
                path,
                format!(
                    "`{}` holds dates and times: write one as \"2024-03-01T10:00:00Z\" or \"2024-03-01\", not {s:?}",
                    t.shown
                ),
            )
        })?),
        (Kind::Opaque, _) => {
            return Err(at(
                path,
                format!("`{}` holds a structure: ask `EXISTS` of it, or a path inside it", t.shown),
            ));
        }
        (_, Literal::Str(s)) => return mismatch(&format!("the text {s:?}")),
        (_, Literal::Num(n)) => return mismatch(&format!("the number {n}")),
        (_, Literal::Bool(b)) => return mismatch(&format!("`{b}`")),
    })
}

/// An RFC 3339 instant, or a date read as its first instant in UTC.
fn instant(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok().or_else(|| {
        s.parse::<Date>().ok().and_then(|d| {
            jiff::tz::TimeZone::UTC
                .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        })
    })
}

/// Types a parsed filter against a schema, with no saved segments to refer to.
pub fn compile(expr: &Expr, schema: &Schema) -> Result<Compiled, FilterError> {
    compile_with(expr, schema, &|_| None, None)
}

/// How deep `segment("…")` references may nest: each inlines the one it names.
const MAX_REFERENCE_DEPTH: usize = 8;
/// The most terms a filter may have once its references are inlined: a segment naming
/// another hundreds of times, itself named hundreds of times, would multiply.
pub const MAX_TERMS: usize = 10_000;

/// Types a parsed filter against a schema; `segment("name")` is replaced by the filter
/// `saved` gives for that name (inlined, so a saved segment redefined later changes
/// what refers to it only when that is compiled again). `name`: the saved segment
/// this filter defines, which it may not refer to.
pub fn compile_with(
    expr: &Expr,
    schema: &Schema,
    saved: &dyn Fn(&str) -> Option<Expr>,
    name: Option<&str>,
) -> Result<Compiled, FilterError> {
    let mut cx = Typing {
        schema,
        saved,
        projection: Vec::new(),
        referring: name.map(str::to_owned).into_iter().collect(),
        made: 0,
    };
    let node = cx.node(expr)?;
    let mut projection = cx.projection;
    projection.sort();
    projection.dedup();
    projection.retain(|p| !p.is_empty());
    let direct = all_direct(&node);
    let fields_only = all_fields(&node);
    let (mut activity, mut volatile) = (false, false);
    visit_targets(&node, &mut |t| {
        let first = t.keys.first().map_or("", String::as_str);
        let second = t.keys.get(1).map_or("", String::as_str);
        activity |= ACTIVITY_MEMBERS.contains(&first);
        volatile |= matches!(
            first,
            "rfm" | "channels" | "bonuses" | "interests" | "abandoned_cart"
        ) || (first == "stats" && second.starts_with("days_since"));
    });
    Ok(Compiled {
        node,
        projection,
        direct,
        fields_only,
        activity,
        volatile,
    })
}

/// Document members worked out from a profile's activity.
const ACTIVITY_MEMBERS: &[&str] = &[
    "stats",
    "rfm",
    "bonuses",
    "interests",
    "favorite_stores",
    "abandoned_cart",
    "mailings",
    "promo_codes",
    "polls",
];

fn visit_targets(n: &Node, f: &mut dyn FnMut(&Target)) {
    match n {
        Node::Or(all) | Node::And(all) => all.iter().for_each(|n| visit_targets(n, f)),
        Node::Not(n) => visit_targets(n, f),
        Node::Compare(t, ..) | Node::In(t, _) | Node::Contains(t, _) | Node::Exists(t) => f(t),
    }
}

/// What typing one filter carries along.
struct Typing<'s> {
    schema: &'s Schema,
    saved: &'s dyn Fn(&str) -> Option<Expr>,
    projection: Vec<String>,
    // The saved segments being inlined, outermost first: a name met again is a loop.
    referring: Vec<String>,
    // Nodes made so far, against MAX_TERMS.
    made: usize,
}

impl Typing<'_> {
    fn target(&mut self, p: &Path) -> Result<Target, FilterError> {
        let t = target(p, self.schema)?;
        self.projection.push(t.projection.clone());
        Ok(t)
    }

    fn all(&mut self, all: &[Expr]) -> Result<Vec<Node>, FilterError> {
        all.iter().map(|e| self.node(e)).collect()
    }

    fn node(&mut self, e: &Expr) -> Result<Node, FilterError> {
        self.made += 1;
        if self.made > MAX_TERMS {
            return Err(FilterError {
                column: 1,
                message: format!(
                    "with the saved segments it refers to inlined, the filter has more than {MAX_TERMS} terms"
                ),
            });
        }
        Ok(match e {
            Expr::Or(all) => Node::Or(self.all(all)?),
            Expr::And(all) => Node::And(self.all(all)?),
            Expr::Not(e) => Node::Not(Box::new(self.node(e)?)),
            Expr::Compare(p, op, lit) => {
                let t = self.target(p)?;
                if t.kind == Kind::Texts {
                    return Err(at(
                        p,
                        format!("`{}` is a list: ask `{} CONTAINS \"…\"`", t.shown, t.shown),
                    ));
                }
                let v = typed(&t, lit, p)?;
                let ordered = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
                if ordered && (t.kind == Kind::Bool || v == Val::Null) {
                    return Err(at(
                        p,
                        format!(
                            "`{}` {} {lit}: only numbers, texts, dates and times have an order",
                            t.shown,
                            op.as_str()
                        ),
                    ));
                }
                Node::Compare(t, *op, v)
            }
            Expr::In(p, lits) => {
                let t = self.target(p)?;
                if t.kind == Kind::Texts {
                    return Err(at(
                        p,
                        format!("`{}` is a list: ask `CONTAINS` of it", t.shown),
                    ));
                }
                let vs = lits
                    .iter()
                    .map(|l| typed(&t, l, p))
                    .collect::<Result<_, _>>()?;
                Node::In(t, vs)
            }
            Expr::Contains(p, lit) => {
                let t = self.target(p)?;
                if !matches!(t.kind, Kind::Texts | Kind::Text) || !matches!(lit, Literal::Str(_)) {
                    return Err(at(
                        p,
                        format!(
                            "`CONTAINS` asks a list of texts or a text for a text; `{}` holds {}",
                            t.shown,
                            t.kind.name()
                        ),
                    ));
                }
                let v = typed(&t, lit, p)?;
                Node::Contains(t, v)
            }
            Expr::Exists(p) => Node::Exists(self.target(p)?),
            Expr::Segment(name, column) => self.segment(name, *column)?,
        })
    }

    fn segment(&mut self, name: &str, column: usize) -> Result<Node, FilterError> {
        let fail = |message: String| FilterError { column, message };
        if self.referring.iter().any(|r| r == name) {
            let mut chain = self.referring.clone();
            chain.push(name.to_owned());
            return Err(fail(format!(
                "segment(\"{name}\") refers to itself: {}",
                chain.join(" → ")
            )));
        }
        if self.referring.len() >= MAX_REFERENCE_DEPTH {
            return Err(fail(format!(
                "segment(\"{name}\"): saved segments refer to one another more than {MAX_REFERENCE_DEPTH} deep"
            )));
        }
        let expr = (self.saved)(name).ok_or_else(|| fail(format!("no saved segment `{name}`")))?;
        self.referring.push(name.to_owned());
        // An error inside the saved filter is placed at the reference: its own columns
        // mean nothing in this text.
        let node = self
            .node(&expr)
            .map_err(|e| fail(format!("in saved segment `{name}`: {}", e.message)))?;
        self.referring.pop();
        Ok(node)
    }
}

impl Compiled {
    /// Whether the filter reads the profile's activity (`stats`, `rfm`, `bonuses`...).
    pub fn reads_activity(&self) -> bool {
        self.activity
    }

    /// Whether what the filter reads can change without a write to the profile: the
    /// clock (`days_since_…`, bonuses, interests, carts), the ranks of other profiles
    /// (`rfm`) or the suppression lists (`channels`).
    pub fn is_volatile(&self) -> bool {
        self.volatile
    }

    /// Whether the filter reads custom or default field `name`.
    pub fn reads_field(&self, name: &str) -> bool {
        let mut reads = false;
        visit_targets(&self.node, &mut |t| {
            reads |= t.keys.len() == 2 && t.keys[0] == "fields" && t.keys[1] == name;
        });
        reads
    }

    /// The projection a document must show for this filter to be evaluated on it.
    pub fn projection(&self) -> &[String] {
        &self.projection
    }

    /// Whether a profile's document (at least the projection) matches.
    pub fn matches(&self, doc: &Json) -> bool {
        eval(&self.node, doc)
    }

    /// Whether the filter reads only what a profile's bytes hold (fields, tags,
    /// identifiers, ids and times), so [`Compiled::matches_view`] can judge it.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Whether a profile matches, read straight from its bytes: the same answer as
    /// [`Compiled::matches`] on its document, without rendering one. Only for
    /// [`Compiled::is_direct`] filters.
    pub fn matches_view(&self, v: &ProfileView<'_>) -> bool {
        eval_view(&self.node, Bytes::View(v))
    }

    /// Whether the filter reads only fields and the customer id, so
    /// [`Compiled::matches_head`] can judge it from the head of the bytes.
    pub fn is_fields_only(&self) -> bool {
        self.fields_only
    }

    /// [`Compiled::matches_view`] for [`Compiled::is_fields_only`] filters, on the
    /// profile's head alone.
    pub fn matches_head(&self, h: &Head<'_>) -> bool {
        eval_view(&self.node, Bytes::Head(h))
    }
}

fn all_direct(n: &Node) -> bool {
    match n {
        Node::Or(all) | Node::And(all) => all.iter().all(all_direct),
        Node::Not(n) => all_direct(n),
        Node::Compare(t, ..) | Node::In(t, _) | Node::Contains(t, _) | Node::Exists(t) => {
            t.direct.is_some()
        }
    }
}

fn all_fields(n: &Node) -> bool {
    match n {
        Node::Or(all) | Node::And(all) => all.iter().all(all_fields),
        Node::Not(n) => all_fields(n),
        Node::Compare(t, ..) | Node::In(t, _) | Node::Contains(t, _) | Node::Exists(t) => {
            matches!(t.direct, Some(Direct::Field(..) | Direct::CustomerId))
        }
    }
}

/// A value read from a profile's bytes, borrowed where it can be.
enum Cell<'a> {
    One(Val),
    Text(&'a str),
    Tags(crate::store::StrList<'a>),
    Texts(&'a [String]),
}

/// What a profile's bytes were read into: the whole view, or only the head (ids and
/// fields) when the filter names nothing else.
#[derive(Clone, Copy)]
enum Bytes<'s, 'a> {
    View(&'s ProfileView<'a>),
    Head(&'s Head<'a>),
}

impl<'a> Bytes<'_, 'a> {
    fn field(&self, id: FieldId) -> Option<ValueRef<'a>> {
        match self {
            Bytes::View(v) => v.field(id),
            Bytes::Head(h) => h.field(id),
        }
    }

    fn customer_id(&self) -> &'a str {
        match self {
            Bytes::View(v) => v.customer_id,
            Bytes::Head(h) => h.customer_id,
        }
    }
}

fn cell<'a>(d: &'a Direct, b: Bytes<'_, 'a>) -> Option<Cell<'a>> {
    // Only fields and the customer id are read from a head (`Compiled::fields_only`).
    let view = || match b {
        Bytes::View(v) => Some(v),
        Bytes::Head(_) => None,
    };
    Some(match d {
        Direct::CustomerId => Cell::Text(b.customer_id()),
        Direct::Created => Cell::One(Val::Time(view()?.created_at())),
        Direct::Updated => Cell::One(Val::Time(view()?.updated_at())),
        Direct::Tags => Cell::Tags(view()?.tags()),
        Direct::Identifier(ns) => {
            let v = view()?;
            Cell::Text(match ns.as_str() {
                "email" => v.email.as_ref()?.normalized,
                "phone" => v.phone.as_ref()?.e164?,
                ns => v.external_ids().find(|(n, _)| *n == ns)?.1,
            })
        }
        Direct::Field(_, id, fallback) => match b.field(*id) {
            Some(ValueRef::Int(i)) => Cell::One(Val::Num(i as f64)),
            Some(ValueRef::Float(f)) => Cell::One(Val::Num(f)),
            Some(ValueRef::Str(t)) => Cell::Text(t),
            Some(ValueRef::Bool(b)) => Cell::One(Val::Bool(b)),
            Some(ValueRef::Date(d)) => Cell::One(Val::Date(d)),
            Some(ValueRef::DateTime(t)) => Cell::One(Val::Time(t)),
            Some(ValueRef::Ip(ip)) => Cell::One(Val::Text(ip.to_string())),
            Some(ValueRef::Tags(list)) => Cell::Tags(list),
            Some(ValueRef::Json(_)) => return None,
            None => match fallback.as_ref()? {
                Fallback::One(val) => Cell::One(val.clone()),
                Fallback::Texts(list) => Cell::Texts(list),
            },
        },
    })
}

fn order_cell(c: &Cell<'_>, want: &Val) -> Option<Ordering> {
    match (c, want) {
        (Cell::One(v), w) => order(v, w),
        (Cell::Text(t), Val::Text(w)) => Some((*t).cmp(w.as_str())),
        _ => None,
    }
}

fn read<'a>(t: &'a Target, b: Bytes<'_, 'a>) -> Option<Cell<'a>> {
    t.direct.as_ref().and_then(|d| cell(d, b))
}

fn eval_view(n: &Node, b: Bytes<'_, '_>) -> bool {
    match n {
        Node::Or(all) => all.iter().any(|n| eval_view(n, b)),
        Node::And(all) => all.iter().all(|n| eval_view(n, b)),
        Node::Not(n) => !eval_view(n, b),
        Node::Exists(t) | Node::Compare(t, ..) | Node::In(t, _) | Node::Contains(t, _) => {
            leaf(n, read(t, b))
        }
    }
}

/// A term's verdict on the value its path has (`None`: no value, default included).
fn leaf(n: &Node, have: Option<Cell<'_>>) -> bool {
    match n {
        Node::Or(_) | Node::And(_) | Node::Not(_) => unreachable!("terms only"),
        Node::Exists(_) => have.is_some(),
        Node::Compare(_, op, want) => {
            let ord = match (&have, want) {
                (None, Val::Null) => Some(Ordering::Equal),
                (None, _) | (Some(_), Val::Null) => None,
                (Some(h), w) => order_cell(h, w),
            };
            compare(*op, ord)
        }
        Node::In(_, wants) => wants.iter().any(|w| match (&have, w) {
            (None, Val::Null) => true,
            (Some(h), w) => order_cell(h, w) == Some(Ordering::Equal),
            _ => false,
        }),
        Node::Contains(_, Val::Text(want)) => match have {
            Some(Cell::Tags(list)) => list.iter().any(|x| x == want),
            Some(Cell::Texts(list)) => list.iter().any(|x| x == want),
            Some(Cell::Text(s)) => s.contains(want.as_str()),
            Some(Cell::One(Val::Text(s))) => s.contains(want.as_str()),
            _ => false,
        },
        Node::Contains(..) => false,
    }
}

fn compare(op: Op, ord: Option<Ordering>) -> bool {
    match op {
        Op::Eq => ord == Some(Ordering::Equal),
        Op::Ne => ord != Some(Ordering::Equal),
        Op::Lt => ord == Some(Ordering::Less),
        Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => ord == Some(Ordering::Greater),
        Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

fn lookup<'a>(doc: &'a Json, keys: &[String]) -> Option<&'a Json> {
    let mut v = doc;
    for k in keys {
        v = v.get(k)?;
    }
    (!v.is_null()).then_some(v)
}

/// A path's value in a document, read the way its target says.
fn read_doc<'a>(doc: &'a Json, t: &Target) -> Option<std::borrow::Cow<'a, Json>> {
    use std::borrow::Cow;
    match &t.via {
        Via::Keys => lookup(doc, &t.keys).map(Cow::Borrowed),
        Via::Interests => {
            let list = doc.get("interests")?.as_array()?;
            let categories = list.iter().filter_map(|i| i.get("category").cloned());
            Some(Cow::Owned(Json::Array(categories.collect())))
        }
        Via::Subscription {
            resource,
            channel,
            category,
        } => doc
            .get("subscriptions")?
            .as_array()?
            .iter()
            .find(|s| {
                s["resource"] == resource.as_str()
                    && s["channel"] == channel.as_str()
                    && s["category"] == category.as_str()
            })
            .and_then(|s| s.get("status"))
            .map(Cow::Borrowed),
    }
}

fn value_of(j: &Json, kind: Kind) -> Option<Val> {
    Some(match (kind, j) {
        (Kind::Number, Json::Number(n)) => Val::Num(n.as_f64()?),
        (Kind::Text, Json::String(s)) => Val::Text(s.clone()),
        (Kind::Bool, Json::Bool(b)) => Val::Bool(*b),
        (Kind::Date, Json::String(s)) => Val::Date(s.parse().ok()?),
        (Kind::DateTime, Json::String(s)) => Val::Time(s.parse().ok()?),
        _ => return None,
    })
}

fn order(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Text(x), Val::Text(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Date(x), Val::Date(y)) => Some(x.cmp(y)),
        (Val::Time(x), Val::Time(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn eval(n: &Node, doc: &Json) -> bool {
    match n {
        Node::Or(all) => all.iter().any(|n| eval(n, doc)),
        Node::And(all) => all.iter().all(|n| eval(n, doc)),
        Node::Not(n) => !eval(n, doc),
        Node::Exists(t) | Node::Compare(t, ..) | Node::In(t, _) | Node::Contains(t, _) => {
            // The document's value as the cell the bytes would give: one term function
            // (`leaf`) judges both.
            let found = read_doc(doc, t);
            let texts: Vec<String>;
            let cell = match found.as_deref() {
                None => None,
                Some(Json::Array(items)) => {
                    texts = items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect();
                    Some(Cell::Texts(&texts))
                }
                Some(Json::String(s)) if t.kind == Kind::Text => Some(Cell::Text(s)),
                // A structure answers only `EXISTS`.
                Some(_) if t.kind == Kind::Opaque => Some(Cell::One(Val::Null)),
                Some(j) => value_of(j, t.kind).map(Cell::One),
            };
            leaf(n, cell)
        }
    }
}

/// A fields-only filter evaluated on field columns (`store::columns`) instead of
/// profiles: each term reads one column's cell for a slot and gives the same verdict as
/// on the profile's bytes (the same term function decides both).
pub struct ColumnPlan {
    node: PlanNode,
    columns: Vec<Arc<Column>>,
}

enum PlanNode {
    Or(Vec<PlanNode>),
    And(Vec<PlanNode>),
    Not(Box<PlanNode>),
    Term {
        column: usize,
        kind: ColumnKind,
        // The verdict without a value (the field's default decides, if it has one).
        absent: bool,
        // Text columns: the verdict for each dictionary id known when planned.
        table: Vec<bool>,
        node: Box<Node>,
    },
}

/// Where a column plan reads one slot.
pub struct PlanScan<'c> {
    scans: Vec<Scan>,
    plan: &'c ColumnPlan,
}

impl Compiled {
    /// The fields a column plan would read, when the filter reads fields only and every
    /// term names a field (not the customer id).
    pub fn column_fields(&self) -> Option<Vec<String>> {
        if !self.fields_only {
            return None;
        }
        let mut fields = Vec::new();
        let mut all = true;
        visit_targets(&self.node, &mut |t| match &t.direct {
            Some(Direct::Field(name, ..)) => fields.push(name.clone()),
            _ => all = false,
        });
        fields.sort();
        fields.dedup();
        all.then_some(fields)
    }

    /// A plan over `columns` (one per [`Compiled::column_fields`] field), or `None` when
    /// a field has no column of a fitting kind.
    pub fn column_plan(&self, columns: &[Arc<Column>]) -> Option<ColumnPlan> {
        let mut used = Vec::new();
        let node = plan_node(&self.node, columns, &mut used)?;
        Some(ColumnPlan {
            node,
            columns: used,
        })
    }
}

fn plan_node(n: &Node, columns: &[Arc<Column>], used: &mut Vec<Arc<Column>>) -> Option<PlanNode> {
    let all = |v: &[Node], used: &mut Vec<Arc<Column>>| {
        v.iter()
            .map(|n| plan_node(n, columns, used))
            .collect::<Option<Vec<_>>>()
    };
    Some(match n {
        Node::Or(v) => PlanNode::Or(all(v, used)?),
        Node::And(v) => PlanNode::And(all(v, used)?),
        Node::Not(n) => PlanNode::Not(Box::new(plan_node(n, columns, used)?)),
        Node::Exists(t) | Node::Compare(t, ..) | Node::In(t, _) | Node::Contains(t, _) => {
            let Some(Direct::Field(name, _, fallback)) = &t.direct else {
                return None;
            };
            let col = columns
                .iter()
                .find(|c| &*c.field == name.as_str())
                .filter(|c| c.is_exact())?;
            let fits = matches!(
                (col.kind, t.kind),
                (ColumnKind::Number, Kind::Number)
                    | (ColumnKind::Date, Kind::Date)
                    | (ColumnKind::Time, Kind::DateTime)
                    | (ColumnKind::Bool, Kind::Bool)
                    | (ColumnKind::Text, Kind::Text)
            );
            if !fits {
                return None;
            }
            let absent = match fallback {
                None => leaf(n, None),
                Some(Fallback::One(v)) => leaf(n, Some(Cell::One(v.clone()))),
                Some(Fallback::Texts(_)) => return None,
            };
            let table = if col.kind == ColumnKind::Text {
                col.texts_from(0)
                    .iter()
                    .map(|s| leaf(n, Some(Cell::Text(s))))
                    .collect()
            } else {
                Vec::new()
            };
            let column = match used.iter().position(|c| Arc::ptr_eq(c, col)) {
                Some(i) => i,
                None => {
                    used.push(Arc::clone(col));
                    used.len() - 1
                }
            };
            PlanNode::Term {
                column,
                kind: col.kind,
                absent,
                table,
                node: Box::new(n.clone()),
            }
        }
    })
}

impl ColumnPlan {
    /// Holds the plan's columns for a scan.
    pub fn scan(&self) -> PlanScan<'_> {
        PlanScan {
            scans: self.columns.iter().map(|c| c.scan()).collect(),
            plan: self,
        }
    }
}

impl PlanScan<'_> {
    /// Whether the profile in `slot` matches.
    #[inline]
    pub fn matches(&self, slot: Slot) -> bool {
        self.eval(&self.plan.node, slot)
    }

    fn eval(&self, n: &PlanNode, slot: Slot) -> bool {
        match n {
            PlanNode::Or(all) => all.iter().any(|n| self.eval(n, slot)),
            PlanNode::And(all) => all.iter().all(|n| self.eval(n, slot)),
            PlanNode::Not(n) => !self.eval(n, slot),
            PlanNode::Term {
                column,
                kind,
                absent,
                table,
                node,
            } => {
                let Some(cell) = self.scans[*column].cell(slot) else {
                    return *absent;
                };
                match kind {
                    ColumnKind::Text => match table.get(cell as usize) {
                        Some(verdict) => *verdict,
                        // A text first written after the plan was made.
                        None => self.plan.columns[*column]
                            .text(cell as u32)
                            .is_some_and(|s| leaf(node, Some(Cell::Text(&s)))),
                    },
                    ColumnKind::Number => {
                        leaf(node, Some(Cell::One(Val::Num(f64::from_bits(cell)))))
                    }
                    ColumnKind::Bool => leaf(node, Some(Cell::One(Val::Bool(cell == 1)))),
                    ColumnKind::Date => {
                        let x = cell as i64;
                        let (y, m, d) = (
                            x.div_euclid(10_000),
                            x.rem_euclid(10_000) / 100,
                            x.rem_euclid(100),
                        );
                        match Date::new(y as i16, m as i8, d as i8) {
                            Ok(date) => leaf(node, Some(Cell::One(Val::Date(date)))),
                            Err(_) => *absent,
                        }
                    }
                    ColumnKind::Time => match Timestamp::from_nanosecond(i128::from(cell as i64)) {
                        Ok(t) => leaf(node, Some(Cell::One(Val::Time(t)))),
                        Err(_) => *absent,
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::FieldSpec;
    use crate::segments::parse;

    fn schema() -> Schema {
        let mut s = Schema::default();
        for spec in [
            json!({"name":"score","type":"integer"}),
            json!({"name":"interests_list","type":"tags"}),
            json!({"name":"vip","type":"boolean"}),
        ] {
            let spec: FieldSpec = serde_json::from_value(spec).unwrap();
            s = s.with_field(spec.into_def().unwrap()).unwrap();
        }
        s
    }

    fn check(filter: &str, doc: &Json) -> bool {
        let c = compile(&parse(filter).unwrap(), &schema()).unwrap();
        c.matches(doc)
    }

    #[test]
    fn filters_read_the_document_with_typed_values() {
        let doc = json!({
            "customer_id": "c1",
            "fields": {"city": "Lisbon", "score": 7, "birth_date": "1990-05-01", "vip": true,
                       "registered_at": "2024-01-02T03:04:05Z", "interests_list": ["tv", "radio"]},
            "tags": ["vip", "b2c"],
            "stats": {"receipts_count": 3, "last_receipt_at": "2024-03-01T10:00:00Z"},
            "rfm": {"r": 5, "f": 3, "m": 4, "segment": "potential_loyalist"},
            "channels": {"sms": {"eligible": false, "reason": "landline"}},
            "interests": [{"category": "monitors", "views": 3}, {"category": "tv", "views": 1}],
            "subscriptions": [
                {"resource": "news", "channel": "email", "category": "default", "status": "subscribed"},
                {"resource": "news", "channel": "sms", "category": "weekly", "status": "unsubscribed"}
            ],
        });
        for (f, want) in [
            (r#"city = "Lisbon""#, true),
            (r#"city != "Porto""#, true),
            (r#"first_name != "Ana""#, true),
            (r#"first_name = null"#, true),
            (r#"first_name EXISTS"#, false),
            (r#"fields.score >= 7 AND score < 8"#, true),
            (r#"birth_date < "1991-01-01""#, true),
            (r#"registered_at > "2024-01-02""#, true),
            (r#"stats.last_receipt_at >= "2024-03-01T10:00:00Z""#, true),
            (
                r#"rfm.segment IN ["champions", "potential_loyalist"]"#,
                true,
            ),
            (r#"tags CONTAINS "vip" AND NOT tags CONTAINS "trial""#, true),
            (r#"interests_list CONTAINS "tv""#, true),
            (r#"city CONTAINS "isb""#, true),
            (
                r#"channels.sms.eligible = true OR channels.sms.reason = "landline""#,
                true,
            ),
            (r#"vip = false"#, false),
            (r#"customer_id = "c1""#, true),
            (r#"stats.receipts_count > 3"#, false),
            (
                r#"interests CONTAINS "tv" AND NOT interests CONTAINS "radio""#,
                true,
            ),
            (r#"subscriptions.news.email = "subscribed""#, true),
            (r#"subscriptions.news.sms = null"#, true),
            (r#"subscriptions.news.sms.weekly != "subscribed""#, true),
            (r#"subscriptions.news.sms.weekly EXISTS"#, true),
            (r#"subscriptions.blog.email EXISTS"#, false),
        ] {
            assert_eq!(check(f, &doc), want, "{f}");
        }
    }

    #[test]
    fn references_that_multiply_are_refused() {
        // Each level names the one below 200 times: 200^3 terms once inlined.
        let wide = |name: &str| vec![format!("segment(\"{name}\")"); 200].join(" OR ");
        let saved = |name: &str| match name {
            "a" => Some(parse("score > 1").unwrap()),
            "b" => Some(parse(&wide("a")).unwrap()),
            "c" => Some(parse(&wide("b")).unwrap()),
            _ => None,
        };
        let e = compile_with(&parse(&wide("c")).unwrap(), &schema(), &saved, None).unwrap_err();
        assert!(e.message.contains("more than 10000 terms"), "{e}");
        assert!(compile_with(&parse(&wide("a")).unwrap(), &schema(), &saved, None).is_ok());
    }

    #[test]
    fn type_mismatches_name_the_field_at_its_column() {
        for (f, says) in [
            (r#"score = "seven""#, "`score` holds a number"),
            (r#"city > 3"#, "`city` holds text"),
            (r#"birth_date = "May 1st""#, "YYYY-MM-DD"),
            (r#"tags = "vip""#, "is a list"),
            (r#"vip > true"#, "have an order"),
            (r#"shoe_size = 3"#, "`shoe_size` is neither a field"),
            (r#"stats.nope = 1"#, "not a member"),
            (r#"rfm = 1"#, "structure"),
            (r#"subscriptions.news.fax = "x""#, "names no channel"),
            (r#"subscriptions.news.email = 1"#, "holds text"),
            (r#"interests = "tv""#, "is a list"),
            (r#"score CONTAINS "1""#, "`CONTAINS` asks"),
            (r#"segment("big")"#, "no saved segment"),
        ] {
            let e =
                compile(&parse(&format!("city = \"x\" AND {f}")).unwrap(), &schema()).unwrap_err();
            assert!(e.message.contains(says), "{f}: {e}");
            if !f.starts_with("segment") {
                assert_eq!(e.column, 16, "{f}: {e}");
            }
        }
    }
}
