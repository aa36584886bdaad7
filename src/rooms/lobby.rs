//! The lobby from memory: every replica keeps the live rooms as the Bus tells of them and
//! answers the lobby's call (`GET /api/rooms`, LIVE rooms, any filter, order and page)
//! without the database, in the bytes the database path would send.
//!
//! - **Events.** The lobby observes the Bus (`Bus::observe`): each room event is applied as
//!   it is delivered, before any socket hears of it and, for this process's own changes,
//!   before the request that made them is answered. `RoomCreated`/`RoomUpdated` carry the
//!   whole view: a newer one replaces the room's entry, an older one (`updatedAt`) is
//!   ignored, so events that cross between replicas in the wrong order do no harm.
//!   `RoomEnded` removes the room and remembers it for an hour, so a late update cannot bring
//!   it back (room ids are never reused).
//! - **Source of truth.** The database loads the index when the process starts and, in a
//!   cluster, each time the link to Redis comes back (the other replicas' events were lost
//!   meanwhile). What events changed while a load was reading stays, newest view first. Until
//!   a load has finished, and while the link is down, answers come from the database.
//! - **Answers.** Each room's JSON is written once, when its view arrives; a page is the
//!   matching entries in the page's order, joined. Pages follow the same orders and cursors
//!   as the SQL in `queries::list`; tests/api/lobby_memory.rs compares the two byte for byte
//!   under churn.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use parking_lot::RwLock;
use serde::Serialize;

use super::domain::{RoomStatus, search_keys};
use super::model::RoomView;
use super::queries::{LobbyCursor, LobbySort, RoomFilter};
use crate::events::DomainEvent;
use crate::ids::RoomId;

/// The link's epoch while the events of every replica reach this one, `None` while they
/// cannot (Redis away). One process is always linked, at epoch 0.
pub type Link = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// How long an ended room is remembered, so a late update cannot bring it back.
const ENDED_MEMORY: Duration = Duration::from_secs(3600);
/// At most this many ended rooms are remembered (the oldest are forgotten first).
const ENDED_MAX: usize = 100_000;

/// A lobby page as the API sends it (the database path serializes this).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomPage {
    pub rooms: Vec<RoomView>,
    pub next_cursor: Option<String>,
}

impl RoomPage {
    pub fn body(rooms: Vec<RoomView>, next: Option<LobbyCursor>) -> Vec<u8> {
        let page = RoomPage {
            rooms,
            next_cursor: next.map(|c| c.encode()),
        };
        serde_json::to_vec(&page).unwrap_or_default()
    }
}

type NewestKey = (NaiveDateTime, String);
type PopularKey = (i32, NaiveDateTime, String);

/// One live room: its view, its JSON, and what the filters and orders read.
struct Entry {
    /// The load generation when an event brought it (0: a load did).
    touched: u64,
    view: RoomView,
    json: Box<[u8]>,
    topic_key: Option<String>,
    search_text: String,
    created_at: NaiveDateTime,
    id: String,
}

impl Entry {
    fn new(view: RoomView) -> Option<Self> {
        let json = serde_json::to_vec(&view).ok()?.into_boxed_slice();
        let (topic_key, search_text) = search_keys(&view.title, view.topic.as_deref());
        Some(Self {
            touched: 0,
            created_at: view.created_at.naive_utc(),
            id: view.id.to_string(),
            view,
            json,
            topic_key,
            search_text,
        })
    }

    fn newest_key(&self) -> NewestKey {
        (self.created_at, self.id.clone())
    }

    fn popular_key(&self) -> PopularKey {
        (
            self.view.participant_count,
            self.created_at,
            self.id.clone(),
        )
    }

    fn cursor(&self, sort: LobbySort) -> LobbyCursor {
        LobbyCursor::at(sort, self.created_at, &self.id, self.view.participant_count)
    }

    /// The same test as the SQL of `queries::list` (status aside: every entry is live).
    fn matches(&self, filter: &RoomFilter) -> bool {
        let view = &self.view;
        filter.language.as_ref().is_none_or(|language| {
            view.language == *language || view.second_language.as_ref() == Some(language)
        }) && filter
            .topic_key
            .as_ref()
            .is_none_or(|key| self.topic_key.as_ref() == Some(key))
            && filter.level.is_none_or(|level| view.level == level)
            && filter
                .text
                .as_ref()
                .is_none_or(|text| self.search_text.contains(text.as_str()))
            && (!filter.has_seat || view.participant_count < view.max_participants)
            && filter
                .mic_required
                .is_none_or(|required| view.mic_required == required)
    }
}

#[derive(Default)]
struct Index {
    /// The link epoch of the last load from the database; `None` until one finished.
    loaded_at: Option<u64>,
    /// Bumped when a load starts reading: entries events bring from then on are newer than
    /// what it may read.
    generation: u64,
    rooms: HashMap<RoomId, Arc<Entry>>,
    newest: BTreeMap<NewestKey, Arc<Entry>>,
    popular: BTreeMap<PopularKey, Arc<Entry>>,
    ended: HashSet<RoomId>,
    ended_order: VecDeque<(Instant, RoomId)>,
}

impl Index {
    fn remove(&mut self, id: &RoomId) {
        if let Some(old) = self.rooms.remove(id) {
            self.newest.remove(&old.newest_key());
            self.popular.remove(&old.popular_key());
        }
    }

    fn insert(&mut self, entry: Arc<Entry>) {
        self.newest.insert(entry.newest_key(), Arc::clone(&entry));
        self.popular.insert(entry.popular_key(), Arc::clone(&entry));
        self.rooms.insert(entry.view.id, entry);
    }

    /// A newer view replaces the entry; an older one, or one of an ended room, is ignored.
    fn update(&mut self, mut entry: Entry) {
        entry.touched = self.generation;
        if self.ended.contains(&entry.view.id) {
            return;
        }
        if let Some(old) = self.rooms.get(&entry.view.id) {
            if old.view.updated_at > entry.view.updated_at {
                return;
            }
        }
        self.remove(&entry.view.id);
        self.insert(Arc::new(entry));
    }

    fn end(&mut self, id: RoomId) {
        self.remove(&id);
        let now = Instant::now();
        while let Some((at, old)) = self.ended_order.front() {
            if now.duration_since(*at) < ENDED_MEMORY && self.ended_order.len() < ENDED_MAX {
                break;
            }
            self.ended.remove(old);
            self.ended_order.pop_front();
        }
        if self.ended.insert(id) {
            self.ended_order.push_back((now, id));
        }
    }
}

/// The live rooms of the whole deployment, as this process knows them.
pub struct Lobby {
    index: RwLock<Index>,
    link: Link,
}

impl Lobby {
    pub fn new(link: Link) -> Self {
        Self {
            index: RwLock::default(),
            link,
        }
    }

    /// The link's epoch now (`None`: down); a load records the one it started at.
    pub fn link_epoch(&self) -> Option<u64> {
        (self.link)()
    }

    /// Follows one event (the Bus's observer).
    pub fn apply(&self, event: &DomainEvent) {
        match event {
            DomainEvent::RoomCreated { room } | DomainEvent::RoomUpdated { room } => {
                if room.status != RoomStatus::Live {
                    self.index.write().end(room.id);
                    return;
                }
                // The JSON is written before the lock is taken.
                if let Some(entry) = Entry::new(room.clone()) {
                    self.index.write().update(entry);
                }
            }
            DomainEvent::RoomEnded { room, .. } => self.index.write().end(room.id),
            _ => {}
        }
    }

    /// From now on, and until the next load, answers come from the database.
    pub fn forget(&self) {
        self.index.write().loaded_at = None;
    }

    /// Called before a load reads the database: returns the load's ticket.
    pub fn begin_load(&self) -> u64 {
        let mut index = self.index.write();
        index.generation += 1;
        index.generation
    }

    /// Replaces the rooms with the database's live rooms, read after [`Self::begin_load`]
    /// gave `ticket` and the link was at `epoch`. What events brought since the ticket stays
    /// unless the read found a newer view; rooms known to have ended stay out.
    pub fn load(&self, ticket: u64, epoch: u64, live: Vec<RoomView>) {
        let entries: Vec<Entry> = live
            .into_iter()
            .filter(|room| room.status == RoomStatus::Live)
            .filter_map(Entry::new)
            .collect();
        let mut index = self.index.write();
        let since: Vec<Arc<Entry>> = index
            .rooms
            .values()
            .filter(|e| e.touched >= ticket)
            .cloned()
            .collect();
        index.rooms.clear();
        index.newest.clear();
        index.popular.clear();
        for entry in entries {
            if !index.ended.contains(&entry.view.id) {
                index.insert(Arc::new(entry));
            }
        }
        for entry in since {
            let newer = index
                .rooms
                .get(&entry.view.id)
                .is_none_or(|read| read.view.updated_at <= entry.view.updated_at);
            if newer {
                index.remove(&entry.view.id);
                index.insert(entry);
            }
        }
        index.loaded_at = Some(epoch);
    }

    /// How many live rooms are known (for the tests and the logs).
    pub fn len(&self) -> usize {
        self.index.read().rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The page's JSON body, or `None` when memory cannot answer: a filter on ended rooms,
    /// no finished load, or the link to the other replicas down or renewed since the load.
    pub fn page(
        &self,
        filter: &RoomFilter,
        limit: i64,
        after: Option<&LobbyCursor>,
    ) -> Option<Vec<u8>> {
        if filter.status != Some(RoomStatus::Live) {
            return None;
        }
        let epoch = self.link_epoch()?;
        let want = usize::try_from(limit).ok()?.saturating_add(1);
        let mut picked: Vec<Arc<Entry>> = Vec::with_capacity(want.min(64));
        {
            let index = self.index.read();
            if index.loaded_at != Some(epoch) {
                return None;
            }
            let take = |entry: &Arc<Entry>| {
                if entry.matches(filter) {
                    picked.push(Arc::clone(entry));
                }
                picked.len() < want
            };
            match (filter.sort, after) {
                (LobbySort::Newest, None) => walk(&index.newest, None, take),
                (LobbySort::Newest, Some(LobbyCursor::Newest(c))) => {
                    walk(&index.newest, Some((c.at, c.id.clone())), take);
                }
                (LobbySort::Popular, None) => walk(&index.popular, None, take),
                (LobbySort::Popular, Some(LobbyCursor::Popular(c))) => {
                    let end = (c.rank, c.position.at, c.position.id.clone());
                    walk(&index.popular, Some(end), take);
                }
                // A cursor of the other order is refused before this.
                _ => return None,
            }
        }
        let limit = want - 1;
        let next = (picked.len() > limit).then(|| {
            picked.truncate(limit);
            picked.last().map(|e| e.cursor(filter.sort))
        });
        Some(page_body(&picked, next.flatten()))
    }
}

/// Offers the entries to `take` from the last key (or the last one before `before`) down,
/// while it asks for more.
fn walk<K: Ord>(
    map: &BTreeMap<K, Arc<Entry>>,
    before: Option<K>,
    mut take: impl FnMut(&Arc<Entry>) -> bool,
) {
    let end = before.map_or(Bound::Unbounded, Bound::Excluded);
    for entry in map.range((Bound::Unbounded, end)).rev().map(|(_, e)| e) {
        if !take(entry) {
            return;
        }
    }
}

/// `{"rooms":[…],"nextCursor":…}` from JSON written already: what serde_json writes for a
/// [`RoomPage`] of the same rooms.
fn page_body(rooms: &[Arc<Entry>], next: Option<LobbyCursor>) -> Vec<u8> {
    let size: usize = rooms.iter().map(|e| e.json.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 64);
    out.extend_from_slice(b"{\"rooms\":[");
    for (i, entry) in rooms.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&entry.json);
    }
    out.extend_from_slice(b"],\"nextCursor\":");
    match next {
        Some(cursor) => {
            // A cursor is plain ASCII; serde_json quotes it as it would in the struct.
            let _ = serde_json::to_writer(&mut out, &cursor.encode());
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::auth::UserPublic;
    use crate::db::cursor::PageCursor;
    use crate::ids::UserId;
    use crate::rooms::domain::Level;

    fn room(title: &str, count: i32, created_secs: i64, updated_secs: i64) -> RoomView {
        let at = |s| Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
        let host = UserPublic {
            id: UserId::random(),
            username: None,
            display_name: "Mai".into(),
            is_guest: true,
        };
        RoomView {
            id: RoomId::random(),
            title: title.into(),
            topic: Some("Đời sống".into()),
            language: "vi".into(),
            level: Level::Any,
            max_participants: 4,
            participant_count: count,
            status: RoomStatus::Live,
            host: host.clone(),
            members: vec![host],
            created_at: at(created_secs),
            updated_at: at(updated_secs),
            ended_at: None,
            is_locked: false,
            second_language: None,
            mic_required: false,
            no_mic: false,
            slow_mode_secs: 0,
        }
    }

    fn live() -> RoomFilter {
        RoomFilter {
            status: Some(RoomStatus::Live),
            ..Default::default()
        }
    }

    fn titles(body: &[u8]) -> (Vec<String>, Option<String>) {
        let page: serde_json::Value = serde_json::from_slice(body).unwrap();
        let titles = page["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_owned())
            .collect();
        (titles, page["nextCursor"].as_str().map(str::to_owned))
    }

    #[test]
    fn pages_follow_the_order_and_the_body_is_what_serde_writes() {
        let lobby = Lobby::new(Arc::new(|| Some(0)));
        let rooms = [room("A", 1, 1, 1), room("B", 3, 2, 2), room("C", 2, 3, 3)];
        lobby.load(lobby.begin_load(), 0, rooms.to_vec());
        let (newest, next) = titles(&lobby.page(&live(), 2, None).unwrap());
        assert_eq!(newest, ["C", "B"]);
        let cursor = LobbyCursor::decode(LobbySort::Newest, &next.unwrap()).unwrap();
        let (rest, next) = titles(&lobby.page(&live(), 2, Some(&cursor)).unwrap());
        assert_eq!((rest, next), (vec!["A".to_owned()], None));
        let popular = RoomFilter {
            sort: LobbySort::Popular,
            ..live()
        };
        assert_eq!(
            titles(&lobby.page(&popular, 5, None).unwrap()).0,
            ["B", "C", "A"]
        );
        // The bytes of the database path's serialization, for the same rooms.
        let body = lobby.page(&live(), 1, None).unwrap();
        let expected = RoomPage::body(
            vec![rooms[2].clone()],
            Some(LobbyCursor::Newest(PageCursor {
                at: rooms[2].created_at.naive_utc(),
                id: rooms[2].id.to_string(),
            })),
        );
        assert_eq!(body, expected);
    }

    #[test]
    fn older_views_and_ended_rooms_do_not_come_back() {
        let lobby = Lobby::new(Arc::new(|| Some(0)));
        lobby.load(lobby.begin_load(), 0, Vec::new());
        let newer = room("new", 2, 1, 5);
        let mut older = newer.clone();
        older.title = "old".into();
        older.updated_at = newer.updated_at - chrono::Duration::seconds(1);
        lobby.apply(&DomainEvent::RoomUpdated {
            room: newer.clone(),
        });
        lobby.apply(&DomainEvent::RoomUpdated { room: older });
        assert_eq!(titles(&lobby.page(&live(), 5, None).unwrap()).0, ["new"]);
        lobby.apply(&DomainEvent::RoomEnded {
            room: newer.clone(),
            reason: crate::events::EndReason::LastLeft,
        });
        lobby.apply(&DomainEvent::RoomUpdated {
            room: newer.clone(),
        });
        assert!(lobby.is_empty());
        // A load that still saw the room (read before it ended) does not bring it back.
        lobby.load(lobby.begin_load(), 0, vec![newer]);
        assert!(lobby.is_empty());
    }

    #[test]
    fn what_events_bring_while_a_load_reads_is_kept() {
        let lobby = Lobby::new(Arc::new(|| Some(0)));
        let stale = room("read before", 1, 1, 1);
        let mut fresh = stale.clone();
        fresh.title = "changed while reading".into();
        fresh.updated_at = stale.updated_at + chrono::Duration::seconds(1);
        let created = room("created while reading", 1, 2, 2);
        let ended = room("ended while reading", 1, 3, 3);
        let dropped = room("ended unseen", 1, 4, 4);
        lobby.load(lobby.begin_load(), 0, vec![dropped]);
        let ticket = lobby.begin_load();
        // Events delivered between the ticket and the end of the read.
        lobby.apply(&DomainEvent::RoomUpdated { room: fresh });
        lobby.apply(&DomainEvent::RoomCreated { room: created });
        lobby.apply(&DomainEvent::RoomEnded {
            room: ended.clone(),
            reason: crate::events::EndReason::LastLeft,
        });
        lobby.load(ticket, 0, vec![stale, ended]);
        let (titles, _) = titles(&lobby.page(&live(), 10, None).unwrap());
        assert_eq!(titles, ["created while reading", "changed while reading"]);
    }

    #[test]
    fn memory_answers_only_when_loaded_at_the_current_link() {
        let epoch = Arc::new(parking_lot::Mutex::new(Some(1)));
        let link = Arc::clone(&epoch);
        let lobby = Lobby::new(Arc::new(move || *link.lock()));
        assert!(lobby.page(&live(), 5, None).is_none(), "not loaded yet");
        lobby.load(lobby.begin_load(), 1, vec![room("A", 1, 1, 1)]);
        assert!(lobby.page(&live(), 5, None).is_some());
        let every_status = RoomFilter::default();
        assert!(lobby.page(&every_status, 5, None).is_none());
        *epoch.lock() = None;
        assert!(lobby.page(&live(), 5, None).is_none(), "link down");
        *epoch.lock() = Some(2);
        assert!(lobby.page(&live(), 5, None).is_none(), "link renewed");
        lobby.load(lobby.begin_load(), 2, Vec::new());
        assert_eq!(titles(&lobby.page(&live(), 5, None).unwrap()).0.len(), 0);
        lobby.forget();
        assert!(lobby.page(&live(), 5, None).is_none(), "forgotten");
    }

    #[test]
    fn filters_match_like_the_sql() {
        let lobby = Lobby::new(Arc::new(|| Some(0)));
        let mut en = room("Business English", 4, 1, 1);
        en.language = "en".into();
        en.second_language = Some("vi".into());
        en.topic = Some("Công Việc".into());
        en.mic_required = true;
        let vi = room("Café Đà Lạt", 1, 2, 2);
        lobby.load(lobby.begin_load(), 0, vec![en, vi]);
        let page = |f: RoomFilter| titles(&lobby.page(&f, 10, None).unwrap()).0;
        let vi_rooms = page(RoomFilter {
            language: Some("vi".into()),
            ..live()
        });
        assert_eq!(vi_rooms, ["Café Đà Lạt", "Business English"]);
        let free = page(RoomFilter {
            has_seat: true,
            ..live()
        });
        assert_eq!(free, ["Café Đà Lạt"]);
        let text = page(RoomFilter {
            text: Some("da lat".into()),
            ..live()
        });
        assert_eq!(text, ["Café Đà Lạt"]);
        let topic = page(RoomFilter {
            topic_key: Some("cong viec".into()),
            ..live()
        });
        assert_eq!(topic, ["Business English"]);
        let mic = page(RoomFilter {
            mic_required: Some(false),
            ..live()
        });
        assert_eq!(mic, ["Café Đà Lạt"]);
    }
}
