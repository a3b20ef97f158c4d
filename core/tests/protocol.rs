//! The replication state machine, one rule at a time, on in-memory stores.

use atomik_core::codec::{decode, encode, Message, Payload};
use atomik_core::memory::MemoryStore;
use atomik_core::protocol::{self, settings};
use atomik_core::{Group, Key, KeyShape, ProtocolError, SiteId, Store};

fn replica(b: u8) -> MemoryStore {
    let mut s = MemoryStore::new(SiteId([b; 16]));
    s.create_table("inv", KeyShape::int(), true);
    s.create_table("parts", KeyShape::text(), false);
    s.track("inv", "qty").unwrap();
    s.track("parts", "mask").unwrap();
    s
}

fn qty(s: &MemoryStore, k: i64) -> Option<i64> {
    s.value("inv", "qty", &Key::int(k)).map(|v| v.read_i64())
}

/// One full round trip: request, serve, finish. Returns deltas applied.
fn sync(device: &mut MemoryStore, hub: &mut MemoryStore, now: u64) -> u64 {
    let req = device
        .atomically(|s| protocol::sync_request(s, now))
        .unwrap();
    let resp = hub
        .atomically(|s| protocol::serve_sync(s, &req, now))
        .unwrap();
    device
        .atomically(|s| protocol::finish_sync(s, &resp, now))
        .unwrap()
}

fn add(s: &mut MemoryStore, k: i64, d: i64) {
    s.accum("inv", "qty", &Key::int(k), Group::Add, d as u64)
        .unwrap();
}

#[test]
fn seal_makes_one_delta_per_cell_and_ships_new_identity_cells() {
    let mut a = replica(1);
    assert_eq!(protocol::seal(&mut a).unwrap(), 0, "nothing pending");
    for _ in 0..1000 {
        add(&mut a, 7, 1);
    }
    add(&mut a, 8, 0); // atomik_add(0): a new cell at the identity
    assert_eq!(protocol::seal(&mut a).unwrap(), 1);
    assert_eq!(
        protocol::seal(&mut a).unwrap(),
        0,
        "sealed cells are not pending"
    );
    let v = a.value("inv", "qty", &Key::int(7)).unwrap();
    assert_eq!((v.reference(), v.pending()), (1000, 0));
    let req = protocol::sync_request(&mut a, 0).unwrap();
    let Message::Request(r) = decode(&req).unwrap() else {
        panic!()
    };
    assert_eq!(r.batches.len(), 1);
    let cells: Vec<_> = r.batches[0]
        .changes
        .cells()
        .map(|(_, k, d)| (k.clone(), d))
        .collect();
    assert_eq!(cells, vec![(Key::int(7), 1000), (Key::int(8), 0)]);
}

#[test]
fn batches_apply_exactly_once() {
    let mut a = replica(1);
    let mut b = replica(2);
    add(&mut a, 1, 5);
    protocol::seal(&mut a).unwrap();
    add(&mut a, 1, 2);
    protocol::seal(&mut a).unwrap();
    let req = protocol::sync_request(&mut a, 0).unwrap();
    let Message::Request(r) = decode(&req).unwrap() else {
        panic!()
    };
    let tracked = b.tracked().unwrap();
    let first = &r.batches[0];
    let second = &r.batches[1];
    let gap = protocol::apply_batch(&mut b, &tracked, second).unwrap_err();
    assert_eq!(
        gap.to_string(),
        format!(
            "gap in batches from site {}: have seq 0, got seq 2 (expected 1)",
            SiteId([1; 16])
        )
    );
    assert_eq!(qty(&b, 1), None, "nothing applied on a gap");
    let bytes = encode(&Message::Batch(first.clone()));
    assert_eq!(protocol::apply_message(&mut b, &bytes, 0).unwrap(), 1);
    assert_eq!(
        protocol::apply_message(&mut b, &bytes, 0).unwrap(),
        0,
        "duplicate is a no-op"
    );
    assert_eq!(protocol::apply_batch(&mut b, &tracked, second).unwrap(), 1);
    assert_eq!(qty(&b, 1), Some(7));
    let v = b.value("inv", "qty", &Key::int(1)).unwrap();
    assert_eq!(
        v.pending(),
        0,
        "received deltas go into the reference (rule 1)"
    );
    assert_eq!(
        protocol::seal(&mut b).unwrap(),
        0,
        "a remote apply is not a local change"
    );
    // A replica's own batch coming back is already part of its state.
    assert_eq!(protocol::apply_message(&mut a, &bytes, 0).unwrap(), 0);
    assert_eq!(qty(&a, 1), Some(7));
}

#[test]
fn one_round_trip_converges_and_excludes_own_batches() {
    let mut hub = replica(9);
    let mut d1 = replica(1);
    let mut d2 = replica(2);
    add(&mut d1, 1, 10);
    add(&mut d2, 1, -3);
    add(&mut hub, 2, 4);
    assert_eq!(
        sync(&mut d1, &mut hub, 1),
        1,
        "d1 gets the hub's cell 2 only"
    );
    assert_eq!(sync(&mut d2, &mut hub, 2), 2);
    assert_eq!(sync(&mut d1, &mut hub, 3), 1);
    for s in [&hub, &d1, &d2] {
        assert_eq!(qty(s, 1), Some(7));
        assert_eq!(qty(s, 2), Some(4));
    }
    assert_eq!(hub.digest("inv", "qty"), d1.digest("inv", "qty"));
    assert_eq!(hub.digest("inv", "qty"), d2.digest("inv", "qty"));
    for k in [1, 2] {
        let key = Key::int(k);
        assert_eq!(
            hub.value("inv", "qty", &key).unwrap().to_bytes(),
            d1.value("inv", "qty", &key).unwrap().to_bytes(),
            "byte-identical"
        );
    }
}

#[test]
fn late_duplicated_or_misaddressed_responses_change_nothing() {
    let mut hub = replica(9);
    let mut d1 = replica(1);
    let mut d2 = replica(2);
    add(&mut hub, 5, 1);
    let req = protocol::sync_request(&mut d1, 0).unwrap();
    let resp = hub
        .atomically(|s| protocol::serve_sync(s, &req, 0))
        .unwrap();
    // d1 writes and seals before the response arrives: the response is
    // stale (its vector moved on) and applies nothing.
    add(&mut d1, 6, 1);
    protocol::seal(&mut d1).unwrap();
    assert_eq!(protocol::finish_sync(&mut d1, &resp, 0).unwrap(), 0);
    assert_eq!(qty(&d1, 5), None);
    // A response for d1 reaching d2 is rejected whole.
    let e = d2
        .atomically(|s| protocol::finish_sync(s, &resp, 0))
        .unwrap_err();
    assert!(matches!(e, ProtocolError::NotAddressedHere { .. }), "{e}");
    // The next sync delivers it; the same response again is a no-op.
    let req = protocol::sync_request(&mut d1, 1).unwrap();
    let resp = hub
        .atomically(|s| protocol::serve_sync(s, &req, 1))
        .unwrap();
    assert_eq!(protocol::finish_sync(&mut d1, &resp, 1).unwrap(), 1);
    assert_eq!(protocol::finish_sync(&mut d1, &resp, 1).unwrap(), 0);
    assert_eq!(qty(&d1, 5), Some(1));
    // A repeated request is harmless too.
    let resp2 = hub
        .atomically(|s| protocol::serve_sync(s, &req, 2))
        .unwrap();
    assert_eq!(protocol::finish_sync(&mut d1, &resp2, 2).unwrap(), 0);
    assert_eq!(qty(&hub, 6), Some(1));
    // A replica refuses its own request.
    let mut relay = replica(7);
    let own = protocol::sync_request(&mut relay, 3).unwrap();
    assert!(matches!(
        relay.atomically(|s| protocol::serve_sync(s, &own, 3)),
        Err(ProtocolError::OwnRequest(_))
    ));
}

#[test]
fn group_mismatch_and_untracked_reject_the_whole_message() {
    let mut a = replica(1);
    let mut b = replica(2);
    add(&mut a, 1, 1);
    a.accum("inv", "qty", &Key::int(2), Group::Add, 1).unwrap();
    b.accum("inv", "qty", &Key::int(2), Group::Xor, 1).unwrap();
    protocol::seal(&mut a).unwrap();
    let req = protocol::sync_request(&mut a, 0).unwrap();
    let e = b
        .atomically(|s| protocol::serve_sync(s, &req, 0))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "group mismatch on inv.qty key 2: cell is xor, delta is add"
    );
    assert_eq!(
        qty(&b, 1),
        None,
        "cell 1 of the same message was not applied"
    );
    let mut c = MemoryStore::new(SiteId([3; 16]));
    c.create_table("inv", KeyShape::int(), true);
    let e = c
        .atomically(|s| protocol::serve_sync(s, &req, 0))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "table \"inv\" column \"qty\" is not tracked here (atomik_track it first)"
    );
}

#[test]
fn deltas_for_rows_that_cannot_be_created_are_parked() {
    let mut a = replica(1);
    let mut hub = replica(9);
    a.accum("parts", "mask", &Key::text("p1"), Group::Xor, 0b11)
        .unwrap();
    sync(&mut a, &mut hub, 0);
    assert_eq!(hub.value("parts", "mask", &Key::text("p1")), None);
    let parked = hub.parked();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].key.clone(), parked[0].delta),
        (Key::text("p1"), 0b11)
    );
    hub.insert_row("parts", Key::text("p1")).unwrap();
    assert!(hub.parked().is_empty());
    assert_eq!(
        hub.value("parts", "mask", &Key::text("p1")).unwrap().read(),
        0b11
    );
}

#[test]
fn retention_folds_what_every_peer_has_and_snapshots_the_absent() {
    let mut hub = replica(9);
    hub.set_setting(settings::HORIZON_SECS, Some(100)).unwrap();
    let mut d1 = replica(1);
    let mut d2 = replica(2);
    sync(&mut d1, &mut hub, 0);
    sync(&mut d2, &mut hub, 0);
    add(&mut d1, 1, 5);
    sync(&mut d1, &mut hub, 10);
    assert_eq!(
        hub.stored_batch_count(),
        1,
        "d2 does not have d1's batch yet"
    );
    sync(&mut d2, &mut hub, 20);
    assert_eq!(
        hub.stored_batch_count(),
        1,
        "d2's request stated its vector before the download"
    );
    sync(&mut d2, &mut hub, 25);
    assert_eq!(
        hub.stored_batch_count(),
        0,
        "every peer has said it has it: folded"
    );
    assert_eq!(
        d1.stored_batch_count(),
        0,
        "acknowledged: dropped from the outbox"
    );
    // d2 goes silent past the horizon and is unregistered; d1 writes on.
    add(&mut d1, 1, 2);
    sync(&mut d1, &mut hub, 200);
    sync(&mut d1, &mut hub, 201);
    assert_eq!(hub.stored_batch_count(), 0);
    // d2 comes back with local pending writes and an unshipped batch.
    add(&mut d2, 2, 1);
    protocol::seal(&mut d2).unwrap();
    add(&mut d2, 3, 1);
    let req = protocol::sync_request(&mut d2, 300).unwrap();
    add(&mut d2, 4, 1); // still pending while the request travels
    let req_msg = decode(&req).unwrap();
    let resp = hub
        .atomically(|s| protocol::serve_sync(s, &req, 300))
        .unwrap();
    let Message::Response(r) = decode(&resp).unwrap() else {
        panic!()
    };
    assert!(matches!(r.payload, Payload::Snapshot(_)), "{req_msg:?}");
    d2.atomically(|s| protocol::finish_sync(s, &resp, 300))
        .unwrap();
    assert_eq!(qty(&d2, 1), Some(7));
    assert_eq!(qty(&d2, 4), Some(1), "pending accumulator kept");
    assert_eq!(d2.value("inv", "qty", &Key::int(4)).unwrap().pending(), 1);
    sync(&mut d2, &mut hub, 301);
    sync(&mut d1, &mut hub, 302);
    for k in 1..=4 {
        assert_eq!(qty(&d1, k), qty(&hub, k));
        assert_eq!(qty(&d2, k), qty(&hub, k));
    }
    assert_eq!(qty(&hub, 2), Some(1));
    assert_eq!(qty(&hub, 3), Some(1));
}

#[test]
fn a_root_hub_refuses_to_sync_upstream() {
    let mut hub = replica(9);
    let mut d1 = replica(1);
    let mut d2 = replica(2);
    add(&mut d1, 1, 1);
    sync(&mut d1, &mut hub, 0);
    sync(&mut d2, &mut hub, 0);
    sync(&mut d1, &mut hub, 0);
    assert_eq!(hub.stored_batch_count(), 0);
    let e = protocol::sync_request(&mut hub, 1).unwrap_err();
    assert!(matches!(e, ProtocolError::RootHub(_)), "{e}");
}

#[test]
fn relay_hubs_pass_batches_per_origin() {
    let mut root = replica(9);
    let mut relay = replica(8);
    let mut d1 = replica(1);
    let mut d2 = replica(2);
    // The relay is connected to its upstream before it serves devices.
    sync(&mut relay, &mut root, 0);
    add(&mut d1, 1, 3);
    sync(&mut d1, &mut relay, 1);
    add(&mut d2, 1, 4);
    sync(&mut d2, &mut root, 2);
    let req = protocol::sync_request(&mut relay, 3).unwrap();
    let Message::Request(r) = decode(&req).unwrap() else {
        panic!()
    };
    assert!(r.relays);
    let resp = root
        .atomically(|s| protocol::serve_sync(s, &req, 3))
        .unwrap();
    let Message::Response(resp_msg) = decode(&resp).unwrap() else {
        panic!()
    };
    assert!(matches!(resp_msg.payload, Payload::Batches(ref b) if b.len() == 1));
    relay
        .atomically(|s| protocol::finish_sync(s, &resp, 3))
        .unwrap();
    sync(&mut d1, &mut relay, 4);
    sync(&mut d2, &mut root, 5);
    for s in [&root, &relay, &d1, &d2] {
        assert_eq!(qty(s, 1), Some(7));
    }
}

#[test]
fn a_replica_does_not_serve_its_own_upstream() {
    let mut hub = replica(9);
    let mut relay = replica(8);
    sync(&mut relay, &mut hub, 2);
    let mut d2 = replica(2);
    sync(&mut d2, &mut relay, 3);
    let req = protocol::sync_request(&mut relay, 4).unwrap();
    let e = d2
        .atomically(|s| protocol::serve_sync(s, &req, 4))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "site {} is this replica's upstream, so this replica cannot serve it (sync links must not form a cycle)",
            SiteId([8; 16])
        )
    );
}
