//! Error types. Every message says what was wrong, and where it can, what to
//! do instead. Engines map each kind to their own error (an SQLSTATE in
//! PostgreSQL, an error string in SQLite).

use thiserror::Error;

use crate::group::Group;
use crate::site::SiteId;

/// A value (17-byte form, text form, or an operation on values) was invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// The canonical form is exactly 17 bytes.
    #[error("atomik value must be 17 bytes, got {0}")]
    WrongLength(usize),
    /// The tag's high nibble is a format version this build does not read.
    #[error(
        "atomik value has format version {version} (tag 0x{tag:02x}); this build reads version 1"
    )]
    UnsupportedVersion {
        /// The whole tag byte.
        tag: u8,
        /// Its high nibble.
        version: u8,
    },
    /// The tag's low nibble names no group.
    #[error("atomik value has unknown group code {} (tag 0x{tag:02x})", tag & 0x0F)]
    UnknownGroup {
        /// The whole tag byte.
        tag: u8,
    },
    /// A group name other than `add` or `xor`.
    #[error("unknown atomik group \"{0}\" (expected \"add\" or \"xor\")")]
    UnknownGroupName(String),
    /// Two values of different groups cannot be combined.
    #[error("cannot combine atomik values of different groups: {left} and {right}")]
    GroupMismatch {
        /// Group of the left operand.
        left: Group,
        /// Group of the right operand.
        right: Group,
    },
    /// The text form could not be parsed.
    #[error("invalid atomik text \"{text}\": {why}")]
    BadText {
        /// The offending text (first 80 characters).
        text: String,
        /// What was wrong with it.
        why: String,
    },
}

/// A wire message could not be decoded. Nothing of such a message is applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The message is shorter than any message can be.
    #[error("atomik message is too short ({0} bytes) to be a message")]
    TooShort(usize),
    /// The first bytes are not the atomik magic.
    #[error("not an atomik message (bad magic bytes {0:02x?})")]
    BadMagic([u8; 2]),
    /// A message wire format version this call does not read.
    #[error("atomik message has wire format version {found}; this call reads {reads}")]
    UnsupportedVersion {
        /// The version in the message's tag.
        found: u8,
        /// What the call reads.
        reads: &'static str,
    },
    /// An unknown message kind.
    #[error("atomik message has unknown kind {0}")]
    UnknownKind(u8),
    /// The message is not of the kind the caller expected.
    #[error("expected an atomik {expected} message, got a {found} message")]
    WrongKind {
        /// What the call takes.
        expected: &'static str,
        /// What arrived.
        found: &'static str,
    },
    /// The checksum does not match: the message was corrupted or truncated.
    #[error("atomik message checksum mismatch (stored {stored:08x}, computed {computed:08x}): corrupted or truncated")]
    Checksum {
        /// Checksum carried by the message.
        stored: u32,
        /// Checksum of the bytes received.
        computed: u32,
    },
    /// The message ended in the middle of a field.
    #[error("atomik message is truncated: {0} runs past the end")]
    Truncated(&'static str),
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("atomik message has an invalid varint in {0}")]
    BadVarint(&'static str),
    /// A field holds a value that no valid message holds.
    #[error("atomik message is malformed: {0}")]
    Malformed(String),
    /// Bytes remain after the last field.
    #[error("atomik message has {0} trailing bytes after its last field")]
    TrailingBytes(usize),
    /// Decoding the message would take more memory than its length
    /// justifies (see `codec::MAX_DECODE_EXPANSION`): it was refused before
    /// that memory was allocated.
    #[error("atomik message of {len} bytes would take more than {limit} bytes of memory to decode (at {what}); refused")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The memory budget of its decode.
        limit: usize,
        /// What was being decoded when the budget ran out.
        what: &'static str,
    },
}

/// An error of the replication protocol or of the store under it. When a
/// protocol call returns an error, the caller rolls back its transaction:
/// nothing of the call is applied.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// The bytes are not a valid message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A value-level error.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A batch from `origin` skips sequence numbers: it cannot be applied
    /// until the missing ones arrive. Never guessed around.
    #[error("gap in batches from site {origin}: have seq {have}, got seq {got} (expected {})", have + 1)]
    Gap {
        /// The batch's origin site.
        origin: SiteId,
        /// The highest seq applied here.
        have: u64,
        /// The seq that arrived.
        got: u64,
    },
    /// A message names a table or column that is not tracked here.
    #[error("table \"{table}\" column \"{column}\" is not tracked here (atomik_track it first)")]
    Untracked {
        /// Table name as it arrived.
        table: String,
        /// Column name as it arrived.
        column: String,
    },
    /// A response acknowledges more than this replica ever sent (a forged
    /// or misrouted response, or a replica restored from an old backup
    /// whose hub has seen its later batches): applying it would drop
    /// unsent batches from the outbox.
    #[error("the response from site {from} acknowledges {ack}, beyond the {sent} this replica has sent; refused (forged, misrouted, or this replica was restored from an older copy)")]
    AckBeyondSent {
        /// The responding hub.
        from: SiteId,
        /// What the response acknowledges (a seq, or a relay's outbox position).
        ack: u64,
        /// The most this replica could have sent.
        sent: u64,
    },
    /// A message's deltas for a column are of another group than the one
    /// `atomik_track` fixed for it: nothing of the message is applied.
    #[error("column \"{table}\".\"{column}\" is tracked as {tracked}; deltas of group {delta} for it are refused")]
    ColumnGroup {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The column's group, fixed by `atomik_track`.
        tracked: Group,
        /// The group of the refused deltas.
        delta: Group,
    },
    /// A delta's group differs from the group of the cell it targets.
    #[error("group mismatch on {table}.{column} key {key}: cell is {cell}, delta is {delta}")]
    GroupMismatch {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The key, rendered.
        key: String,
        /// Group of the stored cell.
        cell: Group,
        /// Group of the delta.
        delta: Group,
    },
    /// A key does not fit the primary key of the table.
    #[error("key {key} does not fit the primary key of \"{table}\": {why}")]
    KeyShape {
        /// Table name.
        table: String,
        /// The key, rendered.
        key: String,
        /// What does not fit.
        why: String,
    },
    /// A response answers another replica (rule 6).
    #[error("this response answers site {addressed}, not this replica ({this})")]
    NotAddressedHere {
        /// The site the response names.
        addressed: SiteId,
        /// This replica's site.
        this: SiteId,
    },
    /// A message made by this very replica came back to it as a request.
    #[error("this sync request was made by this replica ({0}); send it to a hub")]
    OwnRequest(SiteId),
    /// A snapshot lacks batches of this replica's own that it no longer
    /// holds, so installing it would lose them. Sync with a hub that has
    /// them (or wait until they reach this one) and retry.
    #[error("snapshot from site {hub} covers this replica's batches only up to seq {covered}, but batches up to {dropped} were already dropped here after another hub acknowledged them; sync again once they have reached {hub}")]
    StaleSnapshot {
        /// The snapshot's hub.
        hub: SiteId,
        /// What the snapshot covers of this replica's origin.
        covered: u64,
        /// The highest own seq no longer in the outbox.
        dropped: u64,
    },
    /// A replica was asked to serve its own upstream: upstream links must
    /// form a tree (or DAG) rooted at one hub, or batches could circle
    /// without ever reaching the root.
    #[error("site {0} is this replica's upstream, so this replica cannot serve it (sync links must not form a cycle)")]
    UpstreamCycle(SiteId),
    /// A root hub was asked to sync upstream.
    #[error("replica {0} is a root hub: it served before it ever synced to an upstream, so it keeps no outbox and cannot sync to one (declare a relay with atomik_make_relay() before it serves)")]
    RootHub(SiteId),
    /// A relay hub got a response from a hub other than its upstream: a
    /// relay keeps one upstream (its per-origin outbox is acknowledged by
    /// position in that upstream only).
    #[error("relay {relay} syncs to upstream {upstream}, but this response comes from {got}; a relay hub keeps one upstream")]
    RelayUpstream {
        /// This relay.
        relay: SiteId,
        /// Its upstream.
        upstream: SiteId,
        /// The responder.
        got: SiteId,
    },
    /// A replica that syncs to an upstream as a device was asked to serve.
    #[error("replica {0} syncs to an upstream hub as a device, so it cannot serve others; make it a relay hub first (atomik_make_relay())")]
    NotAHub(SiteId),
    /// `atomik_changes` on a replica that keeps no log.
    #[error("replica {0} is not a hub (it has served no sync), so it keeps no log to answer from; ask a hub")]
    NotServing(SiteId),
    /// A feed cursor behind the trimmed part of the hub's log.
    #[error("feed cursor {after} is behind this hub's log, which is trimmed through position {trimmed} (entries older than the retention horizon, atomik_horizon(), are dropped): the deltas in between are gone; rebuild the consumer from the tables and resume from atomik_log_position()")]
    FeedTrimmed {
        /// The cursor asked for.
        after: u64,
        /// Every position at or below this one is gone.
        trimmed: u64,
    },
    /// A feed cursor past the end of the hub's log.
    #[error("feed cursor {after} is past the end of this hub's log (position {end}): it comes from another hub, or this database was restored from an older backup; rebuild the consumer from the tables and resume from atomik_log_position()")]
    FeedAhead {
        /// The cursor asked for.
        after: u64,
        /// The log's last committed position.
        end: u64,
    },
    /// A relay has not yet installed its upstream's relay snapshot.
    #[error("relay {0} has not yet bootstrapped from its upstream: sync it upstream once (atomik_sync_request, the upstream's atomik_sync, atomik_sync_finish), then serve")]
    RelayBootstrapping(SiteId),
    /// A store applied fewer of a message's deltas than it was given: rows
    /// that exist were not updated (a database's row-level security, rule
    /// or trigger kept the caller from writing them). Nothing of the
    /// message is applied.
    #[error("{rows} existing rows of \"{table}\" were not updated for column \"{column}\": row-level security, a rule or a trigger keeps this role from writing them; nothing of the message is applied")]
    WriteRefused {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// How many rows were skipped.
        rows: u64,
    },
    /// A replica holds as many parked cells as it may (see
    /// [`crate::store::MAX_PARKED`]): a message that would park another is
    /// refused whole.
    #[error("this replica already holds {limit} parked deltas (deltas for rows it cannot create, re-checked at every sync); refusing more: create those rows, or raise the limit with atomik_max_parked(n)")]
    ParkedFull {
        /// The limit.
        limit: u64,
    },
    /// A setting given a value it cannot take.
    #[error("{0}")]
    BadSetting(String),
    /// Text that is not a site id.
    #[error("{0}")]
    BadSiteId(String),
    /// A device key of another length than 32 bytes.
    #[error("a device key is 32 bytes, not {0}")]
    DeviceKeyLength(usize),
    /// A request refused for its authentication (see [`crate::auth`]):
    /// nothing of it is applied.
    #[error("the request of site {site} is refused: {why}")]
    Unauthenticated {
        /// The site the request names.
        site: SiteId,
        /// Why.
        why: &'static str,
    },
    /// A response refused for its authentication: nothing of it is applied.
    #[error("the response from site {from} is refused: {why}")]
    UnauthenticatedResponse {
        /// The site the response names as its sender.
        from: SiteId,
        /// Why.
        why: &'static str,
    },
    /// The store (database) failed.
    #[error("storage error: {0}")]
    Store(String),
}

impl ProtocolError {
    /// Wrap any store error.
    pub fn store(e: impl std::fmt::Display) -> Self {
        ProtocolError::Store(e.to_string())
    }
}

/// Result of protocol calls.
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;
