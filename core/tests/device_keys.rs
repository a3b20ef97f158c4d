//! Device keys (`atomik_core::auth`): authenticated sync messages for
//! transports without TLS and tokens, on the memory store. Every refusal
//! leaves both replicas as they were.

use atomik_core::auth::DeviceKey;
use atomik_core::codec::v2::{decode_request_tagged, decode_response_tagged, encode_request};
use atomik_core::log_store::LogStore;
use atomik_core::memory::MemoryStore;
use atomik_core::protocol::v2;
use atomik_core::{Group, Key, KeyShape, ProtocolError, SiteId, Store};

fn replica(b: u8) -> MemoryStore {
    let mut s = MemoryStore::new(SiteId([b; 16]));
    s.create_table("t", KeyShape::int(), true);
    s.track("t", "n", Group::Add).unwrap();
    s
}

fn key(b: u8) -> DeviceKey {
    DeviceKey::from_bytes(&[b; 32]).unwrap()
}

fn add(s: &mut MemoryStore, k: i64, d: i64) {
    s.accum("t", "n", &Key::int(k), Group::Add, d as u64)
        .unwrap();
}

fn read(s: &MemoryStore, k: i64) -> Option<i64> {
    s.value("t", "n", &Key::int(k)).map(|v| v.read_i64())
}

/// A device with key `k`, enrolled on `hub` with it.
fn enrolled(b: u8, k: u8, hub: &mut MemoryStore) -> MemoryStore {
    let mut d = replica(b);
    let site = d.site_id().unwrap();
    d.set_device_key(site, Some(&key(k))).unwrap();
    hub.set_device_key(site, Some(&key(k))).unwrap();
    d
}

fn serve(hub: &mut MemoryStore, req: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    hub.atomically(|s| v2::serve_sync(s, req, 1))
}

fn finish(device: &mut MemoryStore, resp: &[u8]) -> Result<u64, ProtocolError> {
    device.atomically(|s| v2::finish_sync(s, resp, 1))
}

fn request(device: &mut MemoryStore) -> Vec<u8> {
    device.atomically(|s| v2::sync_request(s, 1)).unwrap()
}

#[test]
fn an_enrolled_device_syncs_with_tagged_messages_12_bytes_longer() {
    let mut hub = replica(9);
    add(&mut hub, 1, 100);
    let mut d = enrolled(1, 7, &mut hub);
    add(&mut d, 2, 5);
    let req = request(&mut d);
    let (decoded, tag) = decode_request_tagged(&req).unwrap();
    assert!(tag.is_some_and(|t| t.verifies(&key(7))));
    assert_eq!(
        req[2], 0x23,
        "wire version 2, kind 3: an authenticated request"
    );
    assert_eq!(req.len(), encode_request(&decoded).len() + 12);
    let resp = serve(&mut hub, &req).unwrap();
    let (_, tag) = decode_response_tagged(&resp).unwrap();
    assert!(
        tag.is_some_and(|t| t.verifies(&key(7))),
        "the hub answers with the device's key"
    );
    assert_eq!(
        finish(&mut d, &resp).unwrap(),
        2,
        "a snapshot: the hub's cell and its own"
    );
    assert_eq!((read(&d, 1), read(&hub, 2)), (Some(100), Some(5)));
    // The read-only path as well: a position and atomik_changes.
    add(&mut hub, 1, 1);
    v2::seal(&mut hub, 1).unwrap();
    let position = d.atomically(v2::position_message).unwrap();
    assert_eq!(position[2], 0x23);
    let changes = hub.atomically(|s| v2::changes_for(s, &position)).unwrap();
    assert_eq!(
        d.atomically(|s| v2::apply_message(s, &changes, 1)).unwrap(),
        1
    );
    assert_eq!(read(&d, 1), Some(101));
}

/// The refusals of a hub, with the error each gives; the hub's registry
/// and cells do not move.
#[test]
fn a_hub_refuses_requests_that_do_not_authenticate() {
    let mut hub = replica(9);
    let mut victim = enrolled(1, 7, &mut hub);
    add(&mut victim, 1, 5);
    let honest = request(&mut victim);
    let victim_site = victim.site_id().unwrap();
    let unenrolled_site = SiteId([3; 16]);
    let why = |r: Result<Vec<u8>, ProtocolError>| match r {
        Err(ProtocolError::Unauthenticated { why, .. }) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };

    // The victim's request without its tag (what a forger without the
    // key can send), with another key's tag, and with a flipped byte.
    let (decoded, _) = decode_request_tagged(&honest).unwrap();
    let untagged = encode_request(&decoded);
    assert_eq!(
        why(serve(&mut hub, &untagged)),
        "a device key is enrolled here for it, and the request carries no tag"
    );
    let forged = atomik_core::codec::v2::encode_request_with(&decoded, Some(&key(8)));
    assert_eq!(
        why(serve(&mut hub, &forged)),
        "its tag does not verify with the device key enrolled here"
    );
    let mut flipped = honest.clone();
    let last = flipped.len() - 17;
    flipped[last] ^= 0x01;
    assert!(serve(&mut hub, &flipped).is_err());
    // A tagged request of a site with no key enrolled cannot be checked.
    let mut stranger = replica(3);
    stranger
        .set_device_key(unenrolled_site, Some(&key(5)))
        .unwrap();
    add(&mut stranger, 1, 1000);
    let stray = request(&mut stranger);
    assert_eq!(
        why(serve(&mut hub, &stray)),
        "it carries a device-key tag, but no device key is enrolled here for it"
    );
    assert_eq!(hub.registry_seq(victim_site).unwrap(), 0);
    assert_eq!(
        read(&hub, 1),
        None,
        "nothing of any refused request applied"
    );

    // The honest request still applies.
    let resp = serve(&mut hub, &honest).unwrap();
    finish(&mut victim, &resp).unwrap();
    assert_eq!(read(&hub, 1), Some(5));

    // A hub that requires keys refuses sites without one.
    hub.set_setting(v2::settings::REQUIRE_KEYS, Some(1))
        .unwrap();
    let mut plain = replica(4);
    add(&mut plain, 1, 1);
    assert_eq!(
        why(serve(&mut hub, &request(&mut plain))),
        "this hub accepts only sites with an enrolled device key"
    );
    assert_eq!(read(&hub, 1), Some(5));
}

/// The refusals of a device: a response not tagged with its key changes
/// nothing on it, its outbox included.
#[test]
fn a_device_refuses_responses_that_do_not_authenticate() {
    let mut hub = replica(9);
    add(&mut hub, 1, 100);
    let mut d = enrolled(1, 7, &mut hub);
    add(&mut d, 2, 5);
    let req = request(&mut d);
    let resp = serve(&mut hub, &req).unwrap();
    let (decoded, _) = decode_response_tagged(&resp).unwrap();
    let why = |r: Result<u64, ProtocolError>| match r {
        Err(ProtocolError::UnauthenticatedResponse { why, .. }) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let untagged = atomik_core::codec::v2::encode_response(&decoded);
    assert_eq!(
        why(finish(&mut d, &untagged)),
        "this replica has a device key, and the response carries no tag"
    );
    let forged = atomik_core::codec::v2::encode_response_with(&decoded, Some(&key(8)));
    assert_eq!(
        why(finish(&mut d, &forged)),
        "its tag does not verify with this replica's device key"
    );
    assert_eq!(d.outbox().unwrap().len(), 1, "nothing acknowledged");
    assert_eq!(read(&d, 1), None, "nothing applied");
    // A device without a key cannot check a tagged response.
    let mut plain = replica(2);
    let tagged_for_plain = atomik_core::codec::v2::encode_response_with(
        &atomik_core::codec::v2::Response {
            to: plain.site_id().unwrap(),
            ..decoded.clone()
        },
        Some(&key(7)),
    );
    assert_eq!(
        why(finish(&mut plain, &tagged_for_plain)),
        "it carries a device-key tag, but this replica has no device key"
    );
    assert_eq!(finish(&mut d, &resp).unwrap(), 2);
    assert_eq!(read(&d, 1), Some(100));
}

#[test]
fn removing_a_key_returns_to_plain_messages() {
    let mut hub = replica(9);
    let mut d = enrolled(1, 7, &mut hub);
    let site = d.site_id().unwrap();
    d.set_device_key(site, None).unwrap();
    hub.set_device_key(site, None).unwrap();
    add(&mut d, 1, 2);
    let req = request(&mut d);
    assert_eq!(req[2], 0x21);
    let resp = serve(&mut hub, &req).unwrap();
    assert_eq!(resp[2], 0x22);
    finish(&mut d, &resp).unwrap();
    assert_eq!(read(&hub, 1), Some(2));
}
