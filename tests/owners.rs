//! A name belongs to the key that first joined under it, driven through the relay's rules with keys: another key (or a look-alike) is refused, the same key takes its name back at once from a new process while the old session lingers, and nobody sees it leave or join; a session's token is good only from its key.

use std::net::SocketAddr;
use std::time::Instant;

use urc::proto::message::Millis;
use urc::proto::secure::keys::{Keypair, PublicKey};
use urc::proto::wire::{ErrorCode, Packet};
use urc::relay::{Config, Relay};
use uuid::Uuid;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The relay's rules, and everything they sent (and for which key).
struct Room {
    relay: Relay,
    now: Instant,
    sent: Vec<(SocketAddr, Packet, Option<PublicKey>)>,
}

impl Room {
    fn new() -> Self {
        Self {
            relay: Relay::new(Config::default(), Vec::new()),
            now: Instant::now(),
            sent: Vec::new(),
        }
    }

    /// A JOIN as `name` from `from` by the holder of `key`, as process `instance`: what came
    /// back to `from`.
    fn join(
        &mut self,
        from: SocketAddr,
        name: &str,
        key: PublicKey,
        instance: Uuid,
    ) -> Vec<Packet> {
        let join = Packet::Join {
            room: "lobby".into(),
            name: name.into(),
            history: 0,
            instance,
        };
        self.packet(from, &join, key)
    }

    /// `packet` from `from`, sealed by the holder of `key`: what came back to `from`.
    fn packet(&mut self, from: SocketAddr, packet: &Packet, key: PublicKey) -> Vec<Packet> {
        self.relay
            .handle_as(self.now, Millis::now(), from, &packet.encode(), Some(key));
        self.relay.end_turn(self.now, Millis::now());
        let mut back = Vec::new();
        let mut bytes = Vec::new();
        while let Some((to, key)) = self.relay.poll_transmit_for(&mut bytes) {
            let p = Packet::decode(&bytes).unwrap();
            if to == from {
                back.push(p.clone());
            }
            self.sent.push((to, p, key));
        }
        back
    }
}

fn welcomed(answers: &[Packet]) -> bool {
    answers.iter().any(|p| matches!(p, Packet::Welcome { .. }))
}

fn refusal(answers: &[Packet]) -> Option<String> {
    answers.iter().find_map(|p| match p {
        Packet::Error {
            code: ErrorCode::NameTaken,
            message,
            ..
        } => Some(message.clone()),
        _ => None,
    })
}

#[test]
fn a_name_belongs_to_the_first_key_that_joined_under_it() {
    let mut room = Room::new();
    let (alice, mallory) = (Keypair::generate().public(), Keypair::generate().public());
    let a = addr("192.0.2.1:4000");
    let answers = room.join(a, "alice", alice, Uuid::new_v4());
    assert!(welcomed(&answers));
    let token = answers
        .iter()
        .find_map(|p| match p {
            Packet::Welcome { token, .. } => Some(*token),
            _ => None,
        })
        .unwrap();
    assert!(
        room.relay.owners().changed(),
        "a new owner, for the shell to write"
    );
    assert_eq!(room.relay.owners().len(), 1);
    // While alice is in, the name is in use; after she left, it is still hers.
    let m = addr("198.51.100.9:5000");
    for name in ["alice", "Alice", "аlice"] {
        let said = refusal(&room.join(m, name, mallory, Uuid::new_v4())).expect("refused");
        assert!(said.contains("in use"), "{name}: {said}");
    }
    let leave = |room: &mut Room| {
        room.relay.handle_as(
            room.now,
            Millis::now(),
            a,
            &Packet::Leave {
                token,
                message: String::new(),
            }
            .encode(),
            Some(alice),
        );
        room.relay.end_turn(room.now, Millis::now());
        while room.relay.poll_transmit().is_some() {}
    };
    leave(&mut room);
    assert!(room.relay.clients().is_empty());
    let said = refusal(&room.join(m, "alice", mallory, Uuid::new_v4())).expect("refused");
    assert!(
        said.contains("the name alice belongs to another key"),
        "{said}"
    );
    // Her own key takes it again, from anywhere.
    assert!(welcomed(&room.join(
        addr("192.0.2.77:4100"),
        "alice",
        alice,
        Uuid::new_v4()
    )));
    // A name of mallory's own is mallory's.
    assert!(welcomed(&room.join(m, "mallory", mallory, Uuid::new_v4())));
    assert_eq!(room.relay.owners().len(), 2);
}

#[test]
fn the_same_key_takes_its_name_back_at_once_and_nobody_sees_it_go() {
    let mut room = Room::new();
    let (alice, bob) = (Keypair::generate().public(), Keypair::generate().public());
    let (a, b) = (addr("192.0.2.1:4000"), addr("192.0.2.2:4000"));
    assert!(welcomed(&room.join(a, "alice", alice, Uuid::new_v4())));
    assert!(welcomed(&room.join(b, "bob", bob, Uuid::new_v4())));
    let before = room.sent.len();
    // alice's client was killed; a new process of hers (another instance, another port)
    // joins while the old session is still there.
    let again = addr("192.0.2.1:4001");
    assert!(welcomed(&room.join(again, "alice", alice, Uuid::new_v4())));
    assert!(
        room.relay.clients().get(&a).is_none(),
        "the old session is gone"
    );
    assert!(room.relay.clients().get(&again).is_some());
    assert_eq!(room.relay.clients().len(), 2);
    let told_bob: Vec<&Packet> = (room.sent[before..].iter())
        .filter(|(to, ..)| *to == b)
        .map(|(_, p, _)| p)
        .collect();
    assert!(
        !told_bob
            .iter()
            .any(|p| matches!(p, Packet::Presence { .. })),
        "bob saw alice leave or join: {told_bob:?}"
    );
    // Another key, another process: still refused while alice's session is there.
    let said = refusal(&room.join(
        addr("203.0.113.5:6000"),
        "alice",
        Keypair::generate().public(),
        Uuid::new_v4(),
    ));
    assert!(said.is_some_and(|s| s.contains("in use")));
}

/// Someone else who receives at alice's address made a handshake there with their own key,
/// and somehow holds her token: their packets are still not hers. No answer, no refresh, no
/// leave; her own key's packets go on.
#[test]
fn a_sessions_token_is_good_only_from_its_key() {
    let mut room = Room::new();
    let (alice, mallory) = (Keypair::generate().public(), Keypair::generate().public());
    let a = addr("192.0.2.1:4000");
    let instance = Uuid::new_v4();
    let welcome = room.join(a, "alice", alice, instance);
    let token = welcome
        .iter()
        .find_map(|p| match p {
            Packet::Welcome { token, .. } => Some(*token),
            _ => None,
        })
        .expect("welcomed");
    let refused = room.relay.stats().unauthorised;
    let before = room.sent.len();
    // Each is refused as a packet of no session, and the refusal is sealed for mallory: it
    // names only the token she sent, and tells alice nothing.
    let not_joined = |p: &Packet| matches!(p, Packet::Error { code: ErrorCode::NotJoined, id, .. } if *id == Uuid::from_bytes(token.0));
    let back = room.packet(a, &Packet::Ping { token }, mallory);
    assert!(back.len() == 1 && not_joined(&back[0]), "{back:?}");
    let leave = Packet::Leave {
        token,
        message: String::new(),
    };
    let back = room.packet(a, &leave, mallory);
    assert!(back.len() == 1 && not_joined(&back[0]), "{back:?}");
    assert!(
        room.sent[before..]
            .iter()
            .all(|(to, p, key)| *to == a && not_joined(p) && *key == Some(mallory)),
        "{:?}",
        &room.sent[before..]
    );
    assert_eq!(room.relay.stats().unauthorised, refused + 2);
    assert!(room.relay.clients().get(&a).is_some(), "alice is still in");
    // Nor does a JOIN of hers end alice's session, with alice's instance or another, under
    // alice's name or another: while the session is there, it is dropped unanswered.
    for (name, instance) in [("alice", instance), ("mallory", Uuid::new_v4())] {
        assert_eq!(room.join(a, name, mallory, instance), []);
        let alice_in =
            (room.relay.clients().get(&a)).is_some_and(|s| s.value().key() == Some(alice));
        assert!(alice_in, "mallory's JOIN as {name} ended alice's session");
    }
    // Alice's own packets go on.
    assert!(
        room.packet(a, &Packet::Ping { token }, alice)
            .iter()
            .any(|p| matches!(p, Packet::Pong { .. }))
    );
}

#[test]
fn a_new_process_keeps_the_rooms_it_enters_again_and_its_conversations_and_leaves_the_rest() {
    let mut room = Room::new();
    let (alice, bob) = (Keypair::generate().public(), Keypair::generate().public());
    let (a, b) = (addr("192.0.2.1:4000"), addr("192.0.2.2:4000"));
    let token = |answers: &[Packet]| {
        (answers.iter())
            .find_map(|p| match p {
                Packet::Welcome { token, .. } => Some(*token),
                _ => None,
            })
            .expect("welcomed")
    };
    let alice_token = token(&room.join(a, "alice", alice, Uuid::new_v4()));
    let bob_token = token(&room.join(b, "bob", bob, Uuid::new_v4()));
    for (from, t, key, target) in [
        (a, alice_token, alice, "ops"),
        (a, alice_token, alice, "lunch"),
        (b, bob_token, bob, "lunch"),
        (a, alice_token, alice, "@bob"),
    ] {
        let enter = Packet::Enter {
            token: t,
            room: target.into(),
            history: 0,
        };
        room.packet(from, &enter, key);
    }
    // A new process of alice's takes the session over: it is told of its conversation at
    // once (and again until it shows it knows it), and enters ops again, not lunch.
    let again = addr("192.0.2.1:4001");
    let answers = room.join(again, "alice", alice, Uuid::new_v4());
    let new_token = token(&answers);
    assert!(
        answers
            .iter()
            .any(|p| matches!(p, Packet::Entered { name, .. } if name == "@bob")),
        "{answers:?}"
    );
    let enter = Packet::Enter {
        token: new_token,
        room: "ops".into(),
        history: 0,
    };
    room.packet(again, &enter, alice);
    let before = room.sent.len();
    room.now += std::time::Duration::from_secs(21);
    room.packet(again, &Packet::Ping { token: new_token }, alice);
    let session = room.relay.clients().get(&again).map(|s| s.room_count());
    assert_eq!(session, Some(3), "the lobby, ops and @bob, not lunch");
    let told_bob: Vec<&Packet> = (room.sent[before..].iter())
        .filter(|(to, ..)| *to == b)
        .map(|(_, p, _)| p)
        .collect();
    assert!(
        told_bob
            .iter()
            .any(|p| matches!(p, Packet::Presence { changes, .. }
            if changes.iter().any(|c| c.name == "alice" && !c.joined))),
        "bob, in lunch, sees alice leave it: {told_bob:?}"
    );
}
