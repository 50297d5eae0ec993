//! Durable storage: one redb file in the data dir holding every object, the recent event history
//! (so watches resume across restarts) and the resource-version counter.
//!
//! Writes enter through [`Writer`], a dedicated thread that commits whatever is queued as one
//! transaction with immediate durability (group commit) and only then acknowledges the writers
//! and hands the committed batch to the caller's publish function, in resource-version order.
//! Concurrent writers are grouped: a batch waits briefly for as many writes as the previous
//! commit acknowledged (`gather`), so sixteen writers share an fsync instead of racing the
//! writer thread into batches of one or two; a lone writer never waits.
//!
//! The store holds the admin token, the CA key and every Secret, so the data dir is private to
//! its owner: the dir is 0700 and the store file 0600, created so and tightened at open when
//! found looser (on Unix; elsewhere the platform's defaults apply).
//!
//! One server uses a data dir at a time: [`Store::open`] takes an advisory lock on
//! [`LOCK_FILE`], which records the holder's process id so a second server can say who holds it.
//! The operating system releases the lock when the process ends, even by `kill -9`.
//!
//! Secrets are encrypted at rest once a `Keyring` is given ([`Store::with_secret_encryption`]):
//! every Secret object and every watch event of a Secret is sealed as it is committed, and
//! Secrets stored before (plaintext, or sealed with a rotated-out key) are re-sealed at open in
//! one transaction. Sealed values are opened at [`Store::load`]; a plaintext value is read as is,
//! so a store from before encryption still opens. Stores with sealed values carry the format
//! marker [`FORMAT`] (`/2`), which earlier servers refuse by name instead of failing on the
//! sealed bytes; `/1` stores are read and marked `/2`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::encryption::{EncryptionError, Keyring};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

const FORMAT_KEY: &str = "format";
/// The format this server writes: `/1` plus sealed Secrets.
pub const FORMAT: &str = "strata-apiserver/2";
/// The format before Secrets were sealed, read and upgraded at open.
const FORMAT_V1: &str = "strata-apiserver/1";
const RV_KEY: &str = "resource-version";
const TOKEN_KEY: &str = "token";
/// The database file in the data dir.
pub const STORE_FILE: &str = "store.redb";
/// Locked while a server uses the data dir; holds that server's process id.
pub const LOCK_FILE: &str = "strata.pid";

/// How many watch events are retained for resuming watches, unless configured otherwise.
pub const DEFAULT_EVENT_HISTORY: u64 = 10_000;
/// redb's page cache: objects are served from memory, so the store needs little. 8 MiB keeps
/// the write rate of 32 MiB (group commit, 16 writers) and about 35 MB off the peak RSS of 1,000
/// claims (`cargo bench -p strata-controllers --bench claims`).
const CACHE_BYTES: usize = 8 * 1024 * 1024;
/// The most writes committed in one transaction.
const MAX_BATCH: usize = 2_000;

/// Why the store could not be opened, read or written. Errors about the data dir name it and
/// say what to do where there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data dir does not exist and cannot be created.
    #[error("data dir {dir}: cannot create it: {source}")]
    CreateDir {
        /// The data dir.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another live process holds the data dir's lock file; two servers never share a store.
    #[error("data dir {dir} is in use by {}: stop it or choose another data dir", holder(.pid))]
    InUse {
        /// The data dir.
        dir: PathBuf,
        /// The process holding the data dir, when its id could be read.
        pid: Option<u32>,
    },
    /// The lock file cannot be created, read or locked.
    #[error("data dir {dir}: locking {LOCK_FILE}: {source}")]
    Lock {
        /// The data dir.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The data dir or a file in it cannot be made owner-only.
    #[error("data dir {dir}: cannot make {file} private to its owner: {source}")]
    Permissions {
        /// The data dir.
        dir: PathBuf,
        /// The file, in the data dir.
        file: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The store file cannot be opened as a database.
    #[error(
        "data dir {dir}: {file} is not a readable Strata store (corrupt or foreign file): {source}"
    )]
    Open {
        /// The data dir.
        dir: PathBuf,
        /// The store file in it.
        file: String,
        /// The underlying error.
        source: redb::DatabaseError,
    },
    /// The file is a database, but not one Strata wrote.
    #[error(
        "data dir {dir}: {file} is not a Strata store: it has tables but no format marker `{FORMAT}`"
    )]
    Foreign {
        /// The data dir.
        dir: PathBuf,
        /// The store file in it.
        file: String,
    },
    /// The store has a format marker this server does not read (e.g. from a newer version).
    #[error("data dir {dir}: {file} has format `{found}`, this server reads `{FORMAT}`")]
    WrongFormat {
        /// The data dir.
        dir: PathBuf,
        /// The store file in it.
        file: String,
        /// The format marker the file has.
        found: String,
    },
    /// A database operation failed.
    #[error("store: {doing}: {source}")]
    Db {
        /// The operation that failed.
        doing: &'static str,
        /// The underlying error.
        source: redb::Error,
    },
    /// Stored data cannot be decoded.
    #[error("store: stored {what} is corrupt: {detail}")]
    Corrupt {
        /// What was being decoded.
        what: String,
        /// How it is corrupt.
        detail: String,
    },
    /// Sealing or opening a Secret failed (missing or wrong key).
    #[error("store: {0}")]
    Encryption(#[from] EncryptionError),
}

fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_owned(),
    }
}

fn db_err<E: Into<redb::Error>>(doing: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Db {
        doing,
        source: e.into(),
    }
}

/// One object write: `object: None` removes the key.
#[derive(Debug, Clone)]
pub struct Write {
    /// The revision this write makes; strictly greater than every earlier write's.
    pub rv: u64,
    /// The object's store key (`cluster::store_key`).
    pub key: String,
    /// The object as JSON; `None` deletes it. Shared with the watch event that publishes it.
    pub object: Option<bytes::Bytes>,
    /// The watch event this write publishes, kept in the event history for resuming watches.
    pub event: Vec<u8>,
}

/// Everything read back at start.
pub struct Loaded {
    /// Every stored object as (store key, JSON), Secrets unsealed.
    pub objects: Vec<(String, Vec<u8>)>,
    /// The retained watch events as (revision, encoded event), oldest first.
    pub events: Vec<(u64, Vec<u8>)>,
    /// The last committed revision; the next write takes a greater one.
    pub resource_version: u64,
}

/// The durable store of one data dir: objects, the recent watch events and server settings, in
/// one database file, locked against a second server for as long as it is open. Writes go through
/// a [`Writer`], which commits them in groups.
pub struct Store {
    db: Database,
    history: u64,
    /// Opens sealed values; seals Secrets on commit.
    secrets: Option<Arc<Keyring>>,
    /// Held for as long as the database is open (declared after it, so dropped after it).
    _lock: std::fs::File,
}

impl Store {
    /// Opens (or creates) the store in `dir`, refusing files that are not a Strata store.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        private::create_dir(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        private::tighten(dir, private::DIR_MODE).map_err(|source| StoreError::Permissions {
            dir: dir.to_owned(),
            file: ".".into(),
            source,
        })?;
        let lock = lock_data_dir(dir)?;
        let path = dir.join(STORE_FILE);
        private::create_file(&path)
            .and_then(|()| private::tighten(&path, private::FILE_MODE))
            .map_err(|source| StoreError::Permissions {
                dir: dir.to_owned(),
                file: STORE_FILE.into(),
                source,
            })?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|source| StoreError::Open {
                dir: dir.to_owned(),
                file: STORE_FILE.to_owned(),
                source,
            })?;
        let store = Store {
            db,
            history: DEFAULT_EVENT_HISTORY,
            secrets: None,
            _lock: lock,
        };
        store.check_format(dir)?;
        Ok(store)
    }

    /// Keeps at most `events` watch events for resuming watches.
    pub fn with_event_history(mut self, events: u64) -> Self {
        self.history = events.max(1);
        self
    }

    /// How many watch events are kept; older ones are pruned as writes commit.
    pub fn event_history(&self) -> u64 {
        self.history
    }

    /// Seals Secrets from now on with `keys`, and re-seals at once, in one transaction, every
    /// stored Secret and Secret watch event that is plaintext or sealed with another key.
    pub fn with_secret_encryption(mut self, keys: Keyring) -> Result<Self, StoreError> {
        let keys = Arc::new(keys);
        let resealed = self.reseal_secrets(&keys)?;
        if resealed > 0 {
            tracing::info!(
                values = resealed,
                key = keys.sealing_key(),
                "encrypted the stored Secrets and their watch events with the current key"
            );
        }
        self.secrets = Some(keys);
        Ok(self)
    }

    fn reseal_secrets(&self, keys: &Keyring) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(db_err("begin re-sealing"))?;
        let mut resealed = 0;
        {
            let mut objects = txn
                .open_table(OBJECTS)
                .map_err(db_err("open objects table"))?;
            let mut stale = Vec::new();
            for row in objects
                .range(SECRET_KEY_PREFIX..)
                .map_err(db_err("iterate Secrets"))?
            {
                let (k, v) = row.map_err(db_err("read Secret"))?;
                let key = k.value();
                if !is_secret_key(key) {
                    break;
                }
                if !keys.is_current(v.value()) {
                    stale.push((key.to_owned(), v.value().to_vec()));
                }
            }
            for (key, value) in stale {
                let plain = Keyring::open(
                    Some(keys),
                    &format!("object `{key}`"),
                    key.as_bytes(),
                    value,
                )?;
                objects
                    .insert(key.as_str(), keys.seal(key.as_bytes(), &plain).as_slice())
                    .map_err(db_err("re-seal Secret"))?;
                resealed += 1;
            }
            let mut events = txn
                .open_table(EVENTS)
                .map_err(db_err("open events table"))?;
            let mut stale = Vec::new();
            for row in events.iter().map_err(db_err("iterate events"))? {
                let (k, v) = row.map_err(db_err("read event"))?;
                let value = v.value();
                let reseal = match crate::encryption::sealed_with(value) {
                    Some(_) => !keys.is_current(value),
                    None => is_secret_event(value),
                };
                if reseal {
                    stale.push((k.value(), value.to_vec()));
                }
            }
            for (rv, value) in stale {
                let context = event_context(rv);
                let plain = Keyring::open(
                    Some(keys),
                    &format!("watch event {rv}"),
                    context.as_bytes(),
                    value,
                )?;
                events
                    .insert(rv, keys.seal(context.as_bytes(), &plain).as_slice())
                    .map_err(db_err("re-seal event"))?;
                resealed += 1;
            }
        }
        if resealed == 0 {
            txn.abort().map_err(db_err("end re-sealing"))?;
        } else {
            txn.commit().map_err(db_err("commit re-sealed Secrets"))?;
        }
        Ok(resealed)
    }

    fn check_format(&self, dir: &Path) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(db_err("begin format check"))?;
        {
            let has_tables = txn
                .list_tables()
                .map_err(db_err("list tables"))?
                .next()
                .is_some();
            let mut meta = txn.open_table(META).map_err(db_err("open meta table"))?;
            let found = meta
                .get(FORMAT_KEY)
                .map_err(db_err("read format"))?
                .map(|v| v.value().to_owned());
            match found {
                Some(f) if f == FORMAT => {}
                Some(f) if f == FORMAT_V1 => {
                    meta.insert(FORMAT_KEY, FORMAT)
                        .map_err(db_err("upgrade format"))?;
                }
                Some(found) => {
                    return Err(StoreError::WrongFormat {
                        dir: dir.to_owned(),
                        file: STORE_FILE.into(),
                        found,
                    });
                }
                None if has_tables => {
                    return Err(StoreError::Foreign {
                        dir: dir.to_owned(),
                        file: STORE_FILE.into(),
                    });
                }
                None => {
                    meta.insert(FORMAT_KEY, FORMAT)
                        .map_err(db_err("write format"))?;
                }
            }
            txn.open_table(OBJECTS)
                .map_err(db_err("open objects table"))?;
            txn.open_table(EVENTS)
                .map_err(db_err("open events table"))?;
        }
        txn.commit().map_err(db_err("commit format marker"))
    }

    /// Reads back everything stored, for the cluster to serve from memory. Errors if a sealed
    /// Secret cannot be opened with the configured keys, or stored data is corrupt.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read().map_err(db_err("begin read"))?;
        let objects_table = txn
            .open_table(OBJECTS)
            .map_err(db_err("open objects table"))?;
        let mut objects = Vec::new();
        for row in objects_table.iter().map_err(db_err("iterate objects"))? {
            let (k, v) = row.map_err(db_err("read object"))?;
            let key = k.value().to_owned();
            let value = Keyring::open(
                self.secrets.as_deref(),
                &format!("object `{key}`"),
                key.as_bytes(),
                v.value().to_vec(),
            )?;
            objects.push((key, value));
        }
        let events_table = txn
            .open_table(EVENTS)
            .map_err(db_err("open events table"))?;
        let mut events = Vec::new();
        for row in events_table.iter().map_err(db_err("iterate events"))? {
            let (k, v) = row.map_err(db_err("read event"))?;
            let rv = k.value();
            let value = Keyring::open(
                self.secrets.as_deref(),
                &format!("watch event {rv}"),
                event_context(rv).as_bytes(),
                v.value().to_vec(),
            )?;
            events.push((rv, value));
        }
        let meta = txn.open_table(META).map_err(db_err("open meta table"))?;
        let resource_version = match meta.get(RV_KEY).map_err(db_err("read resource version"))? {
            Some(v) => v.value().parse().map_err(|_| StoreError::Corrupt {
                what: "resource version".into(),
                detail: format!("`{}` is not a number", v.value()),
            })?,
            None => 0,
        };
        Ok(Loaded {
            objects,
            events,
            resource_version,
        })
    }

    /// The API token persisted at first start, if any.
    pub fn token(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err("begin read"))?;
        let meta = txn.open_table(META).map_err(db_err("open meta table"))?;
        Ok(meta
            .get(TOKEN_KEY)
            .map_err(db_err("read token"))?
            .map(|v| v.value().to_owned()))
    }

    /// A server setting kept in the store (CA material).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err("begin read"))?;
        let meta = txn.open_table(META).map_err(db_err("open meta table"))?;
        Ok(meta
            .get(key)
            .map_err(db_err("read setting"))?
            .map(|v| v.value().to_owned()))
    }

    /// Stores server settings, all in one durable transaction.
    pub fn put_meta(&self, entries: &[(&str, &str)]) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(db_err("begin settings write"))?;
        {
            let mut meta = txn.open_table(META).map_err(db_err("open meta table"))?;
            for (k, v) in entries {
                meta.insert(*k, *v).map_err(db_err("write setting"))?;
            }
        }
        txn.commit().map_err(db_err("commit settings"))
    }

    /// Persists the admin API token, so restarts keep existing kubeconfigs valid.
    pub fn save_token(&self, token: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err("begin token write"))?;
        txn.open_table(META)
            .map_err(db_err("open meta table"))?
            .insert(TOKEN_KEY, token)
            .map_err(db_err("write token"))?;
        txn.commit().map_err(db_err("commit token"))
    }

    fn commit(&self, writes: &[&Write]) -> Result<(), StoreError> {
        let Some(last) = writes.last() else {
            return Ok(());
        };
        let txn = self.db.begin_write().map_err(db_err("begin write"))?;
        {
            let mut objects = txn
                .open_table(OBJECTS)
                .map_err(db_err("open objects table"))?;
            let mut events = txn
                .open_table(EVENTS)
                .map_err(db_err("open events table"))?;
            for w in writes {
                let keyring = self.secrets.as_deref().filter(|_| is_secret_key(&w.key));
                match (&w.object, keyring) {
                    (Some(bytes), Some(keys)) => objects
                        .insert(
                            w.key.as_str(),
                            keys.seal(w.key.as_bytes(), bytes).as_slice(),
                        )
                        .map(drop),
                    (Some(bytes), None) => objects.insert(w.key.as_str(), &bytes[..]).map(drop),
                    (None, _) => objects.remove(w.key.as_str()).map(drop),
                }
                .map_err(db_err("write object"))?;
                match keyring {
                    Some(keys) => events.insert(
                        w.rv,
                        keys.seal(event_context(w.rv).as_bytes(), &w.event)
                            .as_slice(),
                    ),
                    None => events.insert(w.rv, w.event.as_slice()),
                }
                .map_err(db_err("write event"))?;
            }
            let horizon = last.rv.saturating_sub(self.history);
            if horizon > 0 {
                events
                    .retain_in(..horizon, |_, _| false)
                    .map_err(db_err("trim event history"))?;
            }
            let rv = last.rv.to_string();
            txn.open_table(META)
                .map_err(db_err("open meta table"))?
                .insert(RV_KEY, rv.as_str())
                .map_err(db_err("write resource version"))?;
        }
        txn.commit().map_err(db_err("commit"))
    }
}

/// Where Secrets' keys start in the objects table (core group, resource `secrets`): the layout
/// of [`crate::cluster::store_key`].
const SECRET_KEY_PREFIX: &str = "|secrets|";

/// Whether the object at `key` is a Secret, sealed when encryption is on.
fn is_secret_key(key: &str) -> bool {
    key.starts_with(SECRET_KEY_PREFIX)
}

/// Whether a stored (plaintext) watch event is a Secret's.
fn is_secret_event(stored: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        group: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        resource: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Head>(stored)
        .is_ok_and(|h| h.group.is_empty() && h.resource == "secrets")
}

/// The associated data sealing the watch event at `rv`: its row, so it cannot be moved.
fn event_context(rv: u64) -> String {
    format!("event|{rv}")
}

/// A queued write and whom to tell once it is durable.
pub struct Pending<T> {
    /// What to commit.
    pub write: Write,
    /// Handed to the writer's `publish` callback after the commit (the cluster's watch event).
    pub payload: T,
    /// Answered once the write is durable, or with the reason it never will be.
    pub ack: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The group-commit writer thread's input.
pub struct Writer<T> {
    tx: mpsc::Sender<Pending<T>>,
    stats: Arc<CommitStats>,
}

impl<T> Clone for Writer<T> {
    fn clone(&self) -> Self {
        Writer {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// What the writer thread has committed: durable transactions (one fsync each) and the writes
/// they carried, so writes per fsync can be measured.
#[derive(Debug, Default)]
pub struct CommitStats {
    commits: AtomicU64,
    writes: AtomicU64,
}

impl CommitStats {
    /// `(transactions committed, writes committed)` so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

impl<T: Send + 'static> Writer<T> {
    /// Starts the writer thread; `publish` runs after each durable commit with the batch's
    /// payloads.
    pub fn start(store: Store, publish: impl Fn(Vec<T>) + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<Pending<T>>();
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("strata-store-writer".into())
            .spawn(move || run_writer(store, rx, publish, &thread_stats))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the store writer thread: {e}"));
        Writer { tx, stats }
    }

    /// Queues a write; must be called in resource-version order (the caller holds its state lock).
    pub fn submit(&self, pending: Pending<T>) -> Result<(), String> {
        self.tx
            .send(pending)
            .map_err(|_| "the store writer has stopped".to_owned())
    }

    /// What has been committed so far.
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }
}

/// The longest a batch waits for the writers of the previous batch to come back.
const MAX_LINGER: Duration = Duration::from_millis(2);

/// How long a batch may wait for its cohort ([`gather`]): about one commit's time (waiting longer
/// than a commit costs more than the commit it saves), at least 200 µs, at most [`MAX_LINGER`].
fn linger(last_commit: Duration) -> Duration {
    last_commit.clamp(Duration::from_micros(200), MAX_LINGER)
}

/// Collects one batch: everything queued, and — when the previous commit acknowledged `cohort`
/// writers at once (concurrent writers, who come back with their next write within
/// microseconds) — waits up to `linger` for as many writes as that cohort before committing. A
/// single writer never waits (its cohort is one), so its latency is one commit, while 16
/// concurrent writers share each fsync instead of splitting into batches of one or two.
fn gather<T>(
    rx: &mpsc::Receiver<Pending<T>>,
    first: Pending<T>,
    cohort: usize,
    linger: Duration,
) -> Vec<Pending<T>> {
    let mut batch = vec![first];
    let drain = |batch: &mut Vec<Pending<T>>| {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
    };
    drain(&mut batch);
    let want = cohort.min(MAX_BATCH);
    if batch.len() >= want {
        return batch;
    }
    let deadline = Instant::now() + linger;
    while batch.len() < want {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match rx.recv_timeout(left) {
            Ok(p) => {
                batch.push(p);
                drain(&mut batch);
            }
            Err(_) => break,
        }
    }
    batch
}

fn run_writer<T>(
    store: Store,
    rx: mpsc::Receiver<Pending<T>>,
    publish: impl Fn(Vec<T>),
    stats: &CommitStats,
) {
    let mut failed: Option<String> = None;
    let mut cohort = 1;
    let mut last_commit = Duration::ZERO;
    while let Ok(first) = rx.recv() {
        let batch = gather(&rx, first, cohort, linger(last_commit));
        if failed.is_none() {
            // Borrowed: the writes' bytes are not copied on the one thread every write waits for.
            let writes: Vec<&Write> = batch.iter().map(|p| &p.write).collect();
            let began = Instant::now();
            match store.commit(&writes) {
                Ok(()) => {
                    stats.commits.fetch_add(1, Ordering::Relaxed);
                    stats
                        .writes
                        .fetch_add(writes.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!("store commit failed, refusing further writes: {e}");
                    failed = Some(e.to_string());
                }
            }
            last_commit = began.elapsed();
        }
        cohort = batch.len();
        let mut payloads = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        for p in batch {
            payloads.push(p.payload);
            acks.push(p.ack);
        }
        if failed.is_none() {
            publish(payloads);
        }
        for ack in acks {
            let _ = ack.send(match &failed {
                None => Ok(()),
                Some(e) => Err(e.clone()),
            });
        }
    }
}

/// Takes the data dir's lock and records this process in it, or names the process holding it.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let lock_err = |source| StoreError::Lock {
        dir: dir.to_owned(),
        source,
    };
    private::create_file(&path).map_err(lock_err)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // An unreadable or empty file (the holder is between locking and writing) names no
            // process; the dir is in use all the same.
            let _ = file.read_to_string(&mut holder);
            return Err(StoreError::InUse {
                dir: dir.to_owned(),
                pid: holder.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.sync_all())
        .map_err(lock_err)?;
    Ok(file)
}

/// Owner-only files and dirs: created with these modes and tightened when found looser.
pub mod private {
    use std::path::Path;

    /// The mode of the data dir and its subdirectories.
    pub const DIR_MODE: u32 = 0o700;
    /// The mode of files holding state, keys or credentials.
    pub const FILE_MODE: u32 = 0o600;

    /// Creates `dir` (and missing parents) accessible to its owner only.
    pub fn create_dir(dir: &Path) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
        builder.create(dir)
    }

    /// Creates `path` empty, readable and writable by its owner only, unless it exists.
    pub fn create_file(path: &Path) -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
        options.open(path).map(drop)
    }

    /// Removes every permission `path` grants beyond `mode` (group and other access).
    #[cfg(unix)]
    pub fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if current & !mode == 0 {
            return Ok(());
        }
        tracing::warn!(
            path = %path.display(),
            from = %format!("{current:o}"),
            to = %format!("{:o}", current & mode),
            "tightening permissions: the data dir holds credentials and Secrets"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))
    }

    #[cfg(not(unix))]
    pub fn tighten(_: &Path, _: u32) -> std::io::Result<()> {
        Ok(())
    }

    /// Writes `contents` to `path` owner-only, creating its dir: written beside the target and
    /// renamed over it, so a reader never sees half a file; the temporary file is owner-only
    /// from its creation, as is what it replaces.
    pub fn write_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        create_file(&tmp)?;
        tighten(&tmp, FILE_MODE)?;
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed when the test ends, whether it passes or fails.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl AsRef<Path> for TempDir {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("strata-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    #[test]
    fn committed_writes_are_read_back_with_the_counter() {
        let dir = temp_dir("roundtrip");
        let store = Store::open(&dir).unwrap();
        store
            .commit(&[&Write {
                rv: 7,
                key: "k".into(),
                object: Some(bytes::Bytes::from_static(b"{}")),
                event: b"e".to_vec(),
            }])
            .unwrap();
        drop(store);
        let loaded = Store::open(&dir).unwrap().load().unwrap();
        assert_eq!(loaded.resource_version, 7);
        assert_eq!(loaded.objects, vec![("k".to_owned(), b"{}".to_vec())]);
        assert_eq!(loaded.events.len(), 1);
    }

    #[test]
    fn a_foreign_file_in_place_of_the_store_is_refused() {
        let dir = temp_dir("foreign");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(STORE_FILE),
            b"this is not a database, it is a text file",
        )
        .unwrap();
        let err = Store::open(&dir).err().unwrap();
        assert!(
            err.to_string().contains("not a readable Strata store"),
            "{err}"
        );
    }

    #[test]
    fn a_store_in_use_is_refused_naming_its_process_until_it_is_closed() {
        let dir = temp_dir("in-use");
        let first = Store::open(&dir).unwrap();
        let err = Store::open(&dir).err().unwrap();
        assert!(
            err.to_string()
                .contains(&format!("is in use by process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        Store::open(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_store_and_its_dir_are_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("modes");
        let _store = Store::open(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.0), 0o700);
        assert_eq!(mode(&dir.0.join(STORE_FILE)), 0o600);
        assert_eq!(mode(&dir.0.join(LOCK_FILE)), 0o600);
    }

    fn secret_write(rv: u64, password: &str) -> Write {
        let object = format!(
            r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"db","namespace":"team-a"}},"data":{{"password":"{password}"}}}}"#
        );
        Write {
            rv,
            key: "|secrets|team-a|db".into(),
            object: Some(object.clone().into_bytes().into()),
            event: format!(
                r#"{{"type":"ADDED","group":"","resource":"secrets","object":{object}}}"#
            )
            .into_bytes(),
        }
    }

    fn raw_values(store: &Store) -> Vec<Vec<u8>> {
        let txn = store.db.begin_read().unwrap();
        let objects = txn.open_table(OBJECTS).unwrap();
        let events = txn.open_table(EVENTS).unwrap();
        let mut out: Vec<Vec<u8>> = objects
            .iter()
            .unwrap()
            .map(|r| r.unwrap().1.value().to_vec())
            .collect();
        out.extend(
            events
                .iter()
                .unwrap()
                .map(|r| r.unwrap().1.value().to_vec()),
        );
        out
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn secrets_are_sealed_on_commit_and_other_objects_are_not() {
        let dir = temp_dir("sealed");
        let keys = Keyring::load_or_create(&dir, false).unwrap();
        let store = Store::open(&dir)
            .unwrap()
            .with_secret_encryption(keys)
            .unwrap();
        let mut config_map = secret_write(2, "c2VjcmV0");
        config_map.key = "|configmaps|team-a|settings".into();
        store
            .commit(&[&secret_write(1, "aHVudGVyMg=="), &config_map])
            .unwrap();
        let raw = raw_values(&store);
        assert!(
            raw.iter().all(|v| !contains(v, b"aHVudGVyMg==")),
            "the Secret's value is sealed"
        );
        assert!(
            raw.iter().any(|v| contains(v, b"c2VjcmV0")),
            "a ConfigMap is stored as is"
        );
        let loaded = store.load().unwrap();
        assert!(
            contains(&loaded.objects[1].1, b"aHVudGVyMg=="),
            "{:?}",
            loaded.objects
        );
        assert!(
            loaded
                .events
                .iter()
                .all(|(_, e)| !e.starts_with(crate::encryption::PREFIX))
        );
    }

    #[test]
    fn a_store_from_before_encryption_opens_and_its_secrets_are_sealed_at_the_next_start() {
        let dir = temp_dir("migrate");
        {
            let store = Store::open(&dir).unwrap();
            store
                .commit(&[&secret_write(1, "b2xkLXBhc3N3b3Jk")])
                .unwrap();
            // Written by a server from before encryption.
            let txn = store.db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORMAT_KEY, FORMAT_V1)
                .unwrap();
            txn.commit().unwrap();
        }
        let keys = Keyring::load_or_create(&dir, false).unwrap();
        let store = Store::open(&dir)
            .unwrap()
            .with_secret_encryption(keys)
            .unwrap();
        let raw = raw_values(&store);
        assert_eq!(raw.len(), 2);
        assert!(
            raw.iter()
                .all(|v| v.starts_with(b"k8s:enc:aesgcm:v1:key-1:")),
            "the Secret and its event are re-sealed"
        );
        let loaded = store.load().unwrap();
        assert!(contains(&loaded.objects[0].1, b"b2xkLXBhc3N3b3Jk"));
        assert!(contains(&loaded.events[0].1, b"b2xkLXBhc3N3b3Jk"));
        assert_eq!(store.meta(FORMAT_KEY).unwrap().as_deref(), Some(FORMAT));
        drop(store);

        // A rotated key re-seals them again; the old key still opens a copy from before.
        let rotated = Keyring::load_or_create(&dir, true).unwrap();
        let store = Store::open(&dir)
            .unwrap()
            .with_secret_encryption(rotated)
            .unwrap();
        assert!(
            raw_values(&store)
                .iter()
                .all(|v| v.starts_with(b"k8s:enc:aesgcm:v1:key-2:"))
        );
        drop(store);
        // Without the keys, a sealed store is a clear error, not garbage.
        let err = Store::open(&dir).unwrap().load().err().unwrap();
        assert!(err.to_string().contains("encryption key `key-2`"), "{err}");
    }
}
