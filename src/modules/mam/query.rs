//! Archive queries (XEP-0313 §4, §6): the client's filters become an id range, one page of it
//! is read, its results go to the querying resource in order, and the `<fin/>` answers the IQ;
//! and the archive's metadata.

use jid::{BareJid, FullJid, Jid};
use rempart_xep::address::parse_address;
use rempart_xep::element::Element;
use rempart_xep::forward::Forwarded;
use rempart_xep::mam::{metadata, ArchiveBound, Fin, MamQuery, MamResult};
use rempart_xep::rsm::{Before, RsmAnswer};
use rempart_xep::stanza::{Condition, StanzaError};
use time::OffsetDateTime;
use tracing::warn;

use super::{archive_store, user_of, ArchivedMessage, MamModule};
use crate::modules::roster::internal;
use crate::router::{stanza_cost, IqRequest, IqResult, Router};
use crate::storage::{ArchiveRange, ArchiveStore, StorageError};

/// The page size when the client does not ask for one.
const DEFAULT_PAGE: u32 = 50;

/// The archive of one host.
type Store = ArchiveStore<ArchivedMessage>;

/// The entries a query selects, before paging.
struct Selection {
    /// Only entries with a greater id.
    after: Option<u64>,
    /// Only entries with a smaller id.
    before: Option<u64>,
    /// Only entries with this partner: a bare JID matches all its resources, a full JID only
    /// itself (§4.1.1).
    with: Option<Jid>,
}

impl Selection {
    /// True when the entry lies in the selection.
    fn holds(&self, id: u64, entry: &ArchivedMessage) -> bool {
        self.after.is_none_or(|after| id > after)
            && self.before.is_none_or(|before| id < before)
            && self.with_matches(entry)
    }

    /// True when the entry's partner is the one asked for.
    fn with_matches(&self, entry: &ArchivedMessage) -> bool {
        let Some(with) = &self.with else {
            return true;
        };
        parse_address(&entry.partner).is_ok_and(|partner| match with.resource() {
            Some(_) => partner == *with,
            None => partner.to_bare() == with.to_bare(),
        })
    }
}

/// Entries of one page in the order read, and whether the selection holds no more beyond
/// them in that direction.
struct Page {
    entries: Vec<(u64, ArchivedMessage)>,
    complete: bool,
}

/// The error for an id the archive does not hold (§4.1.2, §5.1).
fn not_found(id: &str) -> StanzaError {
    StanzaError::new(Condition::ItemNotFound).with_text(format!("no message {id} in the archive"))
}

/// An id the client named, which must be in the archive.
async fn known_id(store: &Store, user: &str, id: &str) -> Result<u64, StanzaError> {
    let number: u64 = id.parse().map_err(|_| not_found(id))?;
    match store.get(user, number).await.map_err(internal)? {
        Some(_) => Ok(number),
        None => Err(not_found(id)),
    }
}

/// Turns the query's times and ids (form and RSM) into one id range; every id named must
/// exist.
async fn select(store: &Store, user: &str, query: &MamQuery) -> Result<Selection, StanzaError> {
    // `start` and `end` are inclusive, the ids exclusive bounds.
    let mut after = query
        .start
        .map(Store::id_for_time)
        .and_then(|id| id.checked_sub(1));
    let mut before = query
        .end
        .map(Store::id_for_time)
        .and_then(|id| id.checked_add(1));
    let rsm_before = match &query.rsm.before {
        Some(Before::Item(id)) => Some(id),
        _ => None,
    };
    for id in [query.after_id.as_ref(), query.rsm.after.as_ref()]
        .into_iter()
        .flatten()
    {
        let id = known_id(store, user, id).await?;
        after = Some(after.map_or(id, |bound| bound.max(id)));
    }
    for id in [query.before_id.as_ref(), rsm_before].into_iter().flatten() {
        let id = known_id(store, user, id).await?;
        before = Some(before.map_or(id, |bound| bound.min(id)));
    }
    Ok(Selection {
        after,
        before,
        with: query.with.clone(),
    })
}

/// Reads up to `limit` entries of the selection, from the oldest up or the newest down,
/// through the partner index when the query names one.
async fn scan(
    store: &Store,
    user: &str,
    selection: &Selection,
    newest_first: bool,
    limit: usize,
) -> Result<Page, StorageError> {
    let mut range = ArchiveRange {
        after: selection.after,
        before: selection.before,
        with: selection
            .with
            .as_ref()
            .map(|with| with.to_bare().to_string()),
        newest_first,
        limit,
    };
    let mut entries = Vec::new();
    loop {
        let read = store.query(user, &range).await?;
        let last = read.entries.last().map(|(id, _)| *id);
        // Only a full JID in `with` filters beyond the index.
        for (id, entry) in read.entries {
            if !selection.with_matches(&entry) {
                continue;
            }
            if entries.len() == limit {
                return Ok(Page {
                    entries,
                    complete: false,
                });
            }
            entries.push((id, entry));
        }
        match last {
            Some(last) if !read.complete => {
                if newest_first {
                    range.before = Some(last);
                } else {
                    range.after = Some(last);
                }
            }
            _ => {
                return Ok(Page {
                    entries,
                    complete: true,
                })
            }
        }
    }
}

/// The entries of the `ids` field that lie in the selection, paged like a scan; every id
/// named must exist.
async fn pick(
    store: &Store,
    user: &str,
    ids: &[String],
    selection: &Selection,
    newest_first: bool,
    limit: usize,
) -> Result<Page, StanzaError> {
    let mut numbers = Vec::with_capacity(ids.len());
    for id in ids {
        numbers.push(id.parse::<u64>().map_err(|_| not_found(id))?);
    }
    numbers.sort_unstable();
    numbers.dedup();
    let mut entries = Vec::new();
    for id in numbers {
        let entry = store
            .get(user, id)
            .await
            .map_err(internal)?
            .ok_or_else(|| not_found(&id.to_string()))?;
        if selection.holds(id, &entry) {
            entries.push((id, entry));
        }
    }
    if newest_first {
        entries.reverse();
    }
    let complete = entries.len() <= limit;
    entries.truncate(limit);
    Ok(Page { entries, complete })
}

/// How many entries the whole selection holds, when the counters know it: the query selects
/// the whole archive or the whole conversation with a bare JID (paging aside).
async fn count(store: &Store, user: &str, query: &MamQuery) -> Option<u32> {
    let narrowed = query.start.is_some()
        || query.end.is_some()
        || query.after_id.is_some()
        || query.before_id.is_some()
        || !query.ids.is_empty();
    let partner = match &query.with {
        _ if narrowed => return None,
        Some(with) if with.resource().is_some() => return None,
        Some(with) => Some(with.to_bare().to_string()),
        None => None,
    };
    let usage = store.usage(user, partner.as_deref()).await.ok()?;
    Some(u32::try_from(usage.entries).unwrap_or(u32::MAX))
}

impl MamModule {
    /// Answers an archive query: the results go to the querying resource, in order and
    /// before the IQ result that carries the `<fin/>`, through the same session queue.
    pub(super) async fn answer_query(&self, router: &Router, request: &IqRequest) -> IqResult {
        let query = MamQuery::parse(&request.payload)
            .map_err(|error| StanzaError::new(error.condition()).with_text(error.to_string()))?;
        if query.rsm.index.is_some() {
            return Err(StanzaError::new(Condition::FeatureNotImplemented)
                .with_text("paging by index is not supported"));
        }
        if query.node.is_some() {
            return Err(StanzaError::new(Condition::FeatureNotImplemented)
                .with_text("an account archive has no pubsub nodes"));
        }
        let Ok(requester) = request.from.try_as_full() else {
            return Err(
                StanzaError::new(Condition::BadRequest).with_text("results are sent to a resource")
            );
        };
        let account = request.to.to_bare();
        let user = user_of(&account);
        let store = archive_store(router, &account);
        let selection = select(&store, user, &query).await?;
        // A page must fit the requester's inbox next to what is already queued there.
        let limits = &router.config.limits;
        let max_page = self.config.max_page.max(1);
        let requested = query.rsm.page_size(DEFAULT_PAGE.min(max_page), max_page);
        let limit = usize::try_from(requested)
            .unwrap_or(usize::MAX)
            .clamp(1, (limits.session_queue / 2).max(1));
        let newest_first = query.rsm.before.is_some();
        let page = if query.ids.is_empty() {
            scan(&store, user, &selection, newest_first, limit)
                .await
                .map_err(internal)?
        } else {
            pick(&store, user, &query.ids, &selection, newest_first, limit).await?
        };
        let budget = limits.session_queue_bytes / 2;
        let (mut results, complete) =
            result_messages(&query, &account.to_string(), requester, page, budget);
        if newest_first {
            results.reverse();
        }
        let rsm = RsmAnswer {
            first: results.first().map(|(id, _)| id.to_string()),
            first_index: None,
            last: results.last().map(|(id, _)| id.to_string()),
            count: count(&store, user, &query).await,
        };
        // Flipping changes only the order of sending, not the page (§4.3.4).
        if query.flip_page {
            results.reverse();
        }
        for (_, message) in results {
            router.send_to_full(requester, message);
        }
        let fin = Fin {
            ns: query.ns,
            complete,
            stable: true,
            rsm,
        };
        Ok(Some(fin.to_element()))
    }

    /// Answers a metadata request: the first and last entries of the archive (§6.1).
    pub(super) async fn metadata(&self, router: &Router, account: &BareJid) -> IqResult {
        let store = archive_store(router, account);
        let user = user_of(account);
        let mut ends = Vec::with_capacity(2);
        for newest_first in [false, true] {
            let range = ArchiveRange {
                newest_first,
                limit: 1,
                ..ArchiveRange::default()
            };
            let read = store.query(user, &range).await.map_err(internal)?;
            ends.extend(read.entries.first().map(|(id, _)| ArchiveBound {
                id: id.to_string(),
                timestamp: Store::time_of_id(*id).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            }));
        }
        Ok(Some(match ends.as_slice() {
            [start, end] => metadata(Some((start, end))),
            _ => metadata(None),
        }))
    }
}

/// The result messages of a page in the order read, stopping before they pass `budget`
/// bytes (always at least one); false when the selection holds more than they carry.
fn result_messages(
    query: &MamQuery,
    account: &str,
    requester: &FullJid,
    page: Page,
    budget: usize,
) -> (Vec<(u64, Element)>, bool) {
    let requester = requester.to_string();
    let mut results = Vec::with_capacity(page.entries.len());
    let mut bytes = 0usize;
    for (id, entry) in page.entries {
        let Ok(stanza) = Element::parse(&entry.xml) else {
            warn!(id, "unreadable archived message skipped");
            continue;
        };
        let result = MamResult {
            ns: query.ns,
            queryid: query.queryid.clone(),
            id: id.to_string(),
            forwarded: Forwarded {
                stamp: Store::time_of_id(id),
                stanza,
            },
        };
        let message = result.to_message(account, &requester);
        bytes = bytes.saturating_add(stanza_cost(&message));
        if bytes > budget && !results.is_empty() {
            return (results, false);
        }
        results.push((id, message));
    }
    (results, page.complete)
}
