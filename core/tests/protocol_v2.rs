//! Protocol v2, one rule at a time, on the memory store.

use atomik_core::codec::v2::{decode_request, decode_response, encode_request, Payload};
use atomik_core::log_store::LogStore;
use atomik_core::memory::MemoryStore;
use atomik_core::protocol::v2;
use atomik_core::{Group, Key, KeyShape, ProtocolError, SiteId};

fn replica(b: u8) -> MemoryStore {
    let mut s = MemoryStore::new(SiteId([b; 16]));
    s.create_table("t", KeyShape::int(), true);
    s.track("t", "n", Group::Add).unwrap();
    s
}

fn add(s: &mut MemoryStore, key: i64, d: i64) {
    s.accum("t", "n", &Key::int(key), Group::Add, d as u64)
        .unwrap();
}

fn read(s: &MemoryStore, key: i64) -> Option<i64> {
    s.value("t", "n", &Key::int(key)).map(|v| v.read_i64())
}

/// One lossless round trip; the deltas the device applied.
fn sync(device: &mut MemoryStore, hub: &mut MemoryStore) -> u64 {
    let req = device.atomically(|s| v2::sync_request(s, 1)).unwrap();
    let resp = hub.atomically(|s| v2::serve_sync(s, &req, 1)).unwrap();
    device.atomically(|s| v2::finish_sync(s, &resp, 1)).unwrap()
}

#[test]
fn seal_ships_what_was_written_once() {
    let mut d = replica(1);
    assert_eq!(v2::seal(&mut d, 0).unwrap(), 0);
    add(&mut d, 1, 5);
    add(&mut d, 2, 0);
    assert_eq!(
        v2::seal(&mut d, 0).unwrap(),
        1,
        "a new cell ships at the identity"
    );
    assert_eq!(v2::seal(&mut d, 0).unwrap(), 0);
    add(&mut d, 1, 3);
    add(&mut d, 1, -3);
    assert_eq!(v2::seal(&mut d, 0).unwrap(), 0, "writes that cancel out");
    assert_eq!(d.outbox().unwrap().len(), 1);
}

#[test]
fn first_sync_is_a_snapshot_then_ranges_less_the_asker() {
    let (mut hub, mut a, mut b) = (replica(9), replica(1), replica(2));
    add(&mut hub, 1, 100);
    add(&mut a, 2, 7);
    let req = a.atomically(|s| v2::sync_request(s, 1)).unwrap();
    assert!(decode_request(&req).unwrap().cursor.is_none());
    let resp = hub.atomically(|s| v2::serve_sync(s, &req, 1)).unwrap();
    let r = decode_response(&resp).unwrap();
    assert!(matches!(r.payload, Payload::Snapshot(_)));
    assert_eq!(r.ack, 1, "the hub holds a's seq 1");
    a.atomically(|s| v2::finish_sync(s, &resp, 1)).unwrap();
    assert!(a.outbox().unwrap().is_empty(), "acknowledged");
    assert_eq!((read(&a, 1), read(&a, 2)), (Some(100), Some(7)));
    sync(&mut b, &mut hub);
    add(&mut b, 2, 1);
    add(&mut a, 2, 1);
    sync(&mut b, &mut hub);
    let req = a.atomically(|s| v2::sync_request(s, 1)).unwrap();
    let resp = hub.atomically(|s| v2::serve_sync(s, &req, 1)).unwrap();
    match decode_response(&resp).unwrap().payload {
        Payload::Range(c) => assert_eq!(c.cell_count(), 1, "b's delta only, not a's own"),
        other => panic!("{other:?}"),
    }
    a.atomically(|s| v2::finish_sync(s, &resp, 1)).unwrap();
    assert_eq!(read(&a, 2), Some(9));
    assert_eq!(read(&hub, 2), Some(9));
}

#[test]
fn duplicates_and_late_responses_apply_nothing() {
    let (mut hub, mut a) = (replica(9), replica(1));
    add(&mut a, 1, 4);
    let req = a.atomically(|s| v2::sync_request(s, 1)).unwrap();
    let first = hub.atomically(|s| v2::serve_sync(s, &req, 1)).unwrap();
    let again = hub.atomically(|s| v2::serve_sync(s, &req, 1)).unwrap();
    assert_eq!(read(&hub, 1), Some(4), "a repeated request applies once");
    a.atomically(|s| v2::finish_sync(s, &first, 1)).unwrap();
    let before = read(&a, 1);
    assert_eq!(a.atomically(|s| v2::finish_sync(s, &again, 1)).unwrap(), 0);
    assert_eq!(a.atomically(|s| v2::finish_sync(s, &first, 1)).unwrap(), 0);
    assert_eq!(read(&a, 1), before);
    let mut other = replica(3);
    assert!(matches!(
        other.atomically(|s| v2::finish_sync(s, &first, 1)),
        Err(ProtocolError::NotAddressedHere { .. })
    ));
}

#[test]
fn uploads_after_a_gap_wait() {
    let (mut hub, mut a) = (replica(9), replica(1));
    add(&mut a, 1, 1);
    v2::seal(&mut a, 0).unwrap();
    add(&mut a, 1, 10);
    let mut req = decode_request(&a.atomically(|s| v2::sync_request(s, 1)).unwrap()).unwrap();
    req.uploads.remove(0);
    let resp = hub
        .atomically(|s| v2::serve_sync(s, &encode_request(&req), 1))
        .unwrap();
    assert_eq!(decode_response(&resp).unwrap().ack, 0);
    assert_eq!(read(&hub, 1), None, "seq 2 waits for seq 1");
    sync(&mut a, &mut hub);
    assert_eq!(read(&hub, 1), Some(11));
}

#[test]
fn roles_refuse_what_would_lose_or_double() {
    let (mut root, mut a) = (replica(9), replica(1));
    sync(&mut a, &mut root);
    // A device cannot serve; a root cannot sync upward.
    let req = replica(2).atomically(|s| v2::sync_request(s, 1)).unwrap();
    assert!(matches!(
        a.atomically(|s| v2::serve_sync(s, &req, 1)),
        Err(ProtocolError::NotAHub(_))
    ));
    assert!(matches!(
        root.atomically(|s| v2::sync_request(s, 1)),
        Err(ProtocolError::RootHub(_))
    ));
    // A device made a relay serves once its relay snapshot is in.
    assert!(v2::make_relay(&mut a, 1).unwrap());
    assert!(!v2::make_relay(&mut a, 1).unwrap());
    assert!(matches!(
        a.atomically(|s| v2::serve_sync(s, &req, 1)),
        Err(ProtocolError::RelayBootstrapping(_))
    ));
    sync(&mut a, &mut root);
    assert!(a.atomically(|s| v2::serve_sync(s, &req, 1)).is_ok());
}

#[test]
fn a_snapshot_that_lacks_acknowledged_batches_is_refused() {
    let (mut h1, mut h2, mut a) = (replica(8), replica(9), replica(1));
    add(&mut a, 1, 5);
    sync(&mut a, &mut h1);
    // h2 never got a's batch: its snapshot would erase it.
    let req = a.atomically(|s| v2::sync_request(s, 1)).unwrap();
    let resp = h2.atomically(|s| v2::serve_sync(s, &req, 1)).unwrap();
    assert!(matches!(
        a.atomically(|s| v2::finish_sync(s, &resp, 1)),
        Err(ProtocolError::StaleSnapshot { .. })
    ));
    assert_eq!(read(&a, 1), Some(5));
}

#[test]
fn the_log_is_trimmed_by_age_and_late_cursors_get_snapshots() {
    let (mut hub, mut a, mut b, mut c) = (replica(9), replica(1), replica(2), replica(3));
    use atomik_core::Store;
    hub.set_setting(v2::settings::HORIZON_SECS, Some(10))
        .unwrap();
    sync(&mut a, &mut hub);
    sync(&mut b, &mut hub);
    sync(&mut c, &mut hub);
    add(&mut a, 1, 1);
    let req = a.atomically(|s| v2::sync_request(s, 100)).unwrap();
    hub.atomically(|s| v2::serve_sync(s, &req, 100)).unwrap();
    // A serve reads first and trims last: b gets a's entry from the log,
    // which was still retained when it was read, and then it goes.
    let req = b.atomically(|s| v2::sync_request(s, 200)).unwrap();
    let resp = hub.atomically(|s| v2::serve_sync(s, &req, 200)).unwrap();
    assert!(matches!(
        decode_response(&resp).unwrap().payload,
        Payload::Range(_)
    ));
    assert_eq!(hub.log_sizes().0, 0, "nothing younger than the horizon");
    b.atomically(|s| v2::finish_sync(s, &resp, 200)).unwrap();
    assert_eq!(read(&b, 1), Some(1));
    // c's cursor is now behind the trimmed log: a snapshot.
    let req = c.atomically(|s| v2::sync_request(s, 201)).unwrap();
    let resp = hub.atomically(|s| v2::serve_sync(s, &req, 201)).unwrap();
    assert!(
        matches!(
            decode_response(&resp).unwrap().payload,
            Payload::Snapshot(_)
        ),
        "c's cursor is behind the trimmed log"
    );
    c.atomically(|s| v2::finish_sync(s, &resp, 201)).unwrap();
    assert_eq!(read(&c, 1), Some(1));
}

#[test]
fn deltas_of_another_group_than_the_column_are_refused_whole() {
    let (mut hub, mut honest) = (replica(9), replica(1));
    // A stranger whose replica tracks t.n as xor claims key 5, which nobody
    // has written, together with an add delta the hub would accept alone.
    let mut stranger = MemoryStore::new(SiteId([6; 16]));
    stranger.create_table("t", KeyShape::int(), true);
    stranger.track("t", "n", Group::Xor).unwrap();
    stranger
        .accum("t", "n", &Key::int(5), Group::Xor, 0xff)
        .unwrap();
    assert!(matches!(
        stranger.accum("t", "n", &Key::int(6), Group::Add, 1),
        Err(ProtocolError::ColumnGroup { .. })
    ));
    let req = stranger.atomically(|s| v2::sync_request(s, 1)).unwrap();
    match hub.atomically(|s| v2::serve_sync(s, &req, 1)) {
        Err(e @ ProtocolError::ColumnGroup { .. }) => assert_eq!(
            e.to_string(),
            "column \"t\".\"n\" is tracked as add; deltas of group xor for it are refused"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(read(&hub, 5), None, "nothing of the message applied");
    assert_eq!(hub.log_sizes().0, 0);
    // The honest writer of key 5 is not blocked.
    add(&mut honest, 5, 2);
    sync(&mut honest, &mut hub);
    assert_eq!(read(&hub, 5), Some(2));
    // A tracked column's group cannot change.
    assert!(matches!(
        hub.track("t", "n", Group::Xor),
        Err(ProtocolError::ColumnGroup { .. })
    ));
}

#[test]
fn a_response_that_acknowledges_unsent_batches_is_refused() {
    use atomik_core::codec::v2::encode_response;
    let (mut hub, mut a) = (replica(9), replica(1));
    add(&mut a, 1, 5);
    let req = a.atomically(|s| v2::sync_request(s, 1)).unwrap();
    let resp = hub.atomically(|s| v2::serve_sync(s, &req, 1)).unwrap();
    // A forged (or misrouted) answer claims seqs this device never sealed:
    // taking it would drop unsent batches.
    add(&mut a, 2, 7);
    v2::seal(&mut a, 1).unwrap();
    let mut forged = decode_response(&resp).unwrap();
    forged.ack = 3;
    let before = a.outbox().unwrap().len();
    match a.atomically(|s| v2::finish_sync(s, &encode_response(&forged), 1)) {
        Err(e @ ProtocolError::AckBeyondSent { .. }) => assert!(
            e.to_string()
                .contains("acknowledges 3, beyond the 2 this replica has sent"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.outbox().unwrap().len(), before, "nothing dropped");
    // Counters beyond what a store can hold are refused at decode.
    forged.ack = u64::MAX;
    assert!(decode_response(&encode_response(&forged))
        .unwrap_err()
        .to_string()
        .contains("response ack 18446744073709551615 is beyond 2^63 - 1"));
    // The real answer still applies.
    a.atomically(|s| v2::finish_sync(s, &resp, 1)).unwrap();
    assert_eq!(
        a.outbox().unwrap().len(),
        1,
        "seq 2 is still unacknowledged"
    );
}
