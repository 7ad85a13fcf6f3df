//! An ad-hoc query: a compiled filter evaluated over a whole database, on every core.
//!
//! Each profile's document is rendered with only the members the filter names (the
//! projection a lookup with `?fields=` would show) and the filter is evaluated on it, so
//! a query means what the documents say. The profiles are split between the cores;
//! matches are put in creation order for paging. Every page counts the whole database
//! again (`total` is always current); saved segments will keep their members instead.

use serde_json::Value as Json;
use ulid::Ulid;

use super::Compiled;
use super::filter::FilterError;
use crate::document::{self, Context, Projection};
use crate::schema::Schema;
use crate::store::{Packed, ProfileStore};

/// What a query found: how many match, one page of them, and where the next starts.
#[derive(Debug)]
pub struct Found {
    /// Profiles matching, in the whole database.
    pub total: usize,
    /// The page, oldest first.
    pub page: Vec<Packed>,
    /// The last profile of the page, when more follow.
    pub next: Option<Ulid>,
}

/// The projection that shows what `compiled` reads.
pub fn projection(compiled: &Compiled, schema: &Schema) -> Result<Projection, FilterError> {
    Projection::from_paths(compiled.projection().iter().map(String::as_str), schema).map_err(|p| {
        FilterError {
            column: 1,
            message: p.detail,
        }
    })
}

#[allow(clippy::too_many_arguments)]
/// Evaluates `compiled` on every profile of `store`, with `threads` threads, and cuts the
/// page of `limit` after `after` (none with `limit` 0).
pub fn run(
    store: &ProfileStore,
    schema: &Schema,
    compiled: &Compiled,
    projection: &Projection,
    cx: &Context<'_>,
    after: Option<Ulid>,
    limit: usize,
    threads: usize,
) -> Found {
    let all = store.all();
    let chunk = all.len().div_ceil(threads.max(1)).max(1);
    let matches_of = |part: &[Packed]| -> Vec<(Ulid, Packed)> {
        part.iter()
            .filter_map(|p| {
                let view = p.view();
                let bytes = document::render(&view, schema, Some(projection), cx);
                let doc: Json = serde_json::from_slice(&bytes).expect("documents are JSON");
                compiled.matches(&doc).then(|| (view.id(), p.clone()))
            })
            .collect()
    };
    let mut found: Vec<(Ulid, Packed)> = std::thread::scope(|s| {
        let workers: Vec<_> = all
            .chunks(chunk)
            .map(|part| s.spawn(move || matches_of(part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a query thread does not panic"))
            .collect()
    });
    found.sort_unstable_by_key(|(id, _)| *id);
    let total = found.len();
    let start = after.map_or(0, |a| found.partition_point(|(id, _)| *id <= a));
    let rest = &found[start.min(total)..];
    let page: Vec<Packed> = rest.iter().take(limit).map(|(_, p)| p.clone()).collect();
    let next = (rest.len() > limit && limit > 0).then(|| rest[limit - 1].0);
    Found { total, page, next }
}
