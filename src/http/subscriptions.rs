//! Subscriptions and audiences: the subscription manager's shape, a profile's
//! subscriptions with their history, and who a campaign on a channel reaches.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::fields::FieldView;
use super::{Db, Read, State, blocking, json};
use crate::channels::{self, Reach, Recipient, Scope};
use crate::db::Database;
use crate::document::{self, SubView};
use crate::error::{ErrorCode, Problem};
use crate::schema::{Channel, Resource, SubscriptionManager};

/// What the subscription manager page shows for a database.
#[derive(Serialize, ToSchema)]
pub struct ManagerView {
    database: String,
    #[serde(flatten)]
    page: SubscriptionManager,
    /// What a customer may subscribe to.
    resources: Vec<Resource>,
    /// The fields flagged for the page, in schema order.
    fields: Vec<FieldView>,
}

/// The subscription manager's title, language, resources and fields.
#[utoipa::path(get, path = "/v1/databases/{db}/subscription-manager", tag = "subscriptions",
    responses((status = 200, body = ManagerView)), security(("bearer" = [])))]
pub async fn manager(db: Db<Read>) -> HttpResponse {
    let settings = db.state.settings.load();
    let schema = db.state.schema.load();
    json(
        StatusCode::OK,
        &ManagerView {
            database: settings.name.clone(),
            page: settings.subscription_manager.clone(),
            resources: settings.resources.clone(),
            fields: schema
                .fields()
                .iter()
                .filter(|f| f.subscription_manager)
                .map(FieldView::from)
                .collect(),
        },
    )
}

/// A profile's subscriptions now, and every change kept.
#[derive(Serialize, ToSchema)]
pub struct ProfileSubscriptions<'a> {
    customer_id: String,
    /// The current state per resource, channel and category.
    #[schema(value_type = Vec<Object>)]
    subscriptions: Vec<SubView<'a>>,
    /// Changes, newest first (up to 20 per resource, channel and category).
    #[schema(value_type = Vec<Object>)]
    history: Vec<SubView<'a>>,
}

/// A profile's subscriptions and their history.
#[utoipa::path(get, path = "/v1/databases/{db}/profiles/{customer_id}/subscriptions",
    tag = "subscriptions", responses((status = 200, body = ProfileSubscriptions),
        (status = 404, description = "profile_not_found")), security(("bearer" = [])))]
pub async fn of_profile(
    db: Db<Read>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (_, customer_id) = path.into_inner();
    let profile = super::profiles::found(&db, &customer_id)?;
    let v = profile.view();
    let customer_id = v.customer_id.to_owned();
    Ok(json(
        StatusCode::OK,
        &ProfileSubscriptions {
            customer_id: customer_id.clone(),
            subscriptions: v.subscriptions().map(SubView::from).collect(),
            history: document::subscription_history(&v),
        },
    ))
}

/// `GET .../audience` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    /// `email`, `sms` or `push`.
    channel: Channel,
    /// Only customers subscribed to this resource (default: any).
    resource: Option<String>,
    /// Only customers subscribed in this category (default: any).
    category: Option<String>,
    /// Page size, 1 to 10,000 (default 1000).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of an audience.
#[derive(Serialize, ToSchema)]
pub struct AudiencePage {
    channel: Channel,
    #[schema(value_type = Vec<Object>)]
    recipients: Vec<Recipient>,
    next_cursor: Option<String>,
}

/// Who a campaign on `channel` reaches: the database's eligible profiles, then the
/// profiles of every watchers database of its group (contact and suppression decide for
/// them, not subscriptions), in pages.
#[utoipa::path(get, path = "/v1/databases/{db}/audience", tag = "subscriptions",
    params(AudienceQuery), responses((status = 200, body = AudiencePage)), security(("bearer" = [])))]
pub async fn audience(
    state: State,
    db: Db<Read>,
    q: web::Query<AudienceQuery>,
) -> Result<HttpResponse, Problem> {
    let q = q.into_inner();
    let channel = q.channel;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::new(
            ErrorCode::InvalidQuery,
            format!("limit {limit} is outside 1 to 10000"),
        ));
    }
    let settings = db.state.settings.load_full();
    if let Some(r) = &q.resource {
        let resource = settings.resource(r).ok_or_else(|| {
            Problem::new(
                ErrorCode::SubscriptionInvalid,
                format!(
                    "resource `{r}` is not declared on database `{}`",
                    settings.name
                ),
            )
        })?;
        if !resource.channels.contains(&q.channel) {
            return Err(Problem::new(
                ErrorCode::ChannelInvalid,
                format!("resource `{r}` does not send on `{}`", q.channel.as_str()),
            ));
        }
    }
    // The cursor is `<database>.<profile id>`: this database first, then its group's
    // watchers by name. A name, not a position, so watchers databases created or
    // dropped between pages neither repeat nor skip another.
    let (resume_db, after) = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => (None, None),
        Some(c) => c
            .rsplit_once('.')
            .and_then(|(d, id)| Some((Some(d.to_owned()), Some(id.parse::<ulid::Ulid>().ok()?))))
            .ok_or_else(|| {
                Problem::new(
                    ErrorCode::CursorInvalid,
                    format!("`{c}` is not a cursor this server gave"),
                )
            })?,
    };
    let own = db.db.clone();
    let watchers = if settings.watchers {
        Vec::new()
    } else {
        state.databases.watchers_of(&settings.group, &settings.name)
    };
    let (recipients, next_cursor) =
        blocking(move || Ok(audience_page(&own, &watchers, &q, resume_db, after, limit))).await?;
    Ok(json(
        StatusCode::OK,
        &AudiencePage {
            channel,
            recipients,
            next_cursor,
        },
    ))
}

/// The most profiles one audience request looks at; a sparse audience answers a short
/// page with a cursor rather than hold a blocking thread for a whole store.
const SCAN_BUDGET: usize = 200_000;

/// One page of an audience: the recipients and the cursor of the next page.
fn audience_page(
    own: &Database,
    watchers: &[std::sync::Arc<Database>],
    q: &AudienceQuery,
    resume_db: Option<String>,
    mut after: Option<ulid::Ulid>,
    limit: usize,
) -> (Vec<Recipient>, Option<String>) {
    let own_settings = own.state.settings.load();
    // Where to start: this database, or the first watchers database at or after the
    // cursor's name (`after` holds only within the database it was given for).
    let mut part = match resume_db.as_deref() {
        None => 0,
        Some(name) if name == own_settings.name => 0,
        Some(name) => {
            let i = watchers.iter().position(|w| w.name().as_str() >= name);
            if i.is_none_or(|i| watchers[i].name() != name) {
                after = None;
            }
            i.map_or(watchers.len() + 1, |i| i + 1)
        }
    };
    let mut budget = SCAN_BUDGET;
    let mut recipients = Vec::new();
    while part <= watchers.len() {
        let part_db: &Database = if part == 0 { own } else { &watchers[part - 1] };
        let s = part_db.state.settings.load();
        // A watcher is held to the lists of the audience's database and its own.
        let mut attached = own_settings.suppression_lists.clone();
        if part > 0 {
            attached.extend(
                s.suppression_lists
                    .iter()
                    .filter(|l| !own_settings.suppression_lists.contains(l))
                    .cloned(),
            );
        }
        let scope = if part == 0 {
            Scope {
                resource: q.resource.as_deref(),
                category: q.category.as_deref(),
                ignore_subscriptions: false,
            }
        } else {
            Scope {
                ignore_subscriptions: true,
                ..Scope::default()
            }
        };
        let reach = Reach {
            lists: &part_db.state.suppression,
            attached: &attached,
        };
        let (found, next) = channels::recipients(
            &s.name,
            &part_db.state.store,
            q.channel,
            reach,
            scope,
            after,
            limit - recipients.len(),
            &mut budget,
        );
        recipients.extend(found);
        if let Some(id) = next {
            return (recipients, Some(format!("{}.{id}", s.name)));
        }
        part += 1;
        after = None;
        if recipients.len() == limit && part <= watchers.len() {
            let next_db = watchers[part - 1].name();
            return (recipients, Some(format!("{next_db}.{}", ulid::Ulid::nil())));
        }
    }
    (recipients, None)
}
