//! Relays that share their rooms through a real NATS JetStream cluster on loopback (`urc serve --store nats://…`, the cluster started by `common/nats.rs`): members of two relays see one order, a NATS node killed loses nothing acknowledged, a cluster stopped holds the clients' lines until it is back, and a restart of everything keeps every room's history.

mod common;

use std::path::Path;

use common::nats::Cluster;
use common::{Client, Relay, WAIT, events, pipe};

/// One test at a time: each starts NATS nodes, relays and clients, and on two cores the
/// elections and retransmission timers of several at once are what would be measured.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A relay on `cluster` with `replicas` copies of each stream, its data directory `data`
/// holding the relay key of `key_from` (the cluster's relays share one key), if given.
fn relay(cluster: &Cluster, data: &Path, key_from: Option<&Path>, replicas: &str) -> Relay {
    if let Some(from) = key_from {
        std::fs::create_dir_all(data).unwrap();
        std::fs::copy(from.join("relay.key"), data.join("relay.key")).unwrap();
    }
    let urls = cluster.urls();
    Relay::start(data, &["--store", &urls, "--replicas", replicas])
}

/// A relay on `cluster` with one copy of each stream and `extra` options.
fn relay_with(cluster: &Cluster, data: &Path, extra: &[&str]) -> Relay {
    let urls = cluster.urls();
    Relay::start(data, &[&["--store", urls.as_str()][..], extra].concat())
}

/// Waits until `client` has shown a live message of each of `texts`.
fn sees_all(client: &mut Client, texts: &[String]) {
    let mut waiting: Vec<&String> = texts.iter().collect();
    while !waiting.is_empty() {
        let e = client.expect(|e| e["event"] == "message");
        waiting.retain(|t| e["text"] != t.as_str());
    }
}

#[test]
fn members_of_two_relays_see_one_order_gap_free() {
    let _alone = alone();
    let cluster = Cluster::start(3);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = relay(&cluster, a_dir.path(), None, "3");
    let b = relay(&cluster, b_dir.path(), Some(a_dir.path()), "3");
    let mut alice = Client::join(a.addr, "alice", &[]);
    let mut bob = Client::join(b.addr, "bob", &[]);
    let mut carol = Client::join(b.addr, "carol", &[]);
    let mut texts = Vec::new();
    for i in 0..10 {
        let (a_line, b_line) = (format!("from a {i} 你好"), format!("from b {i}"));
        alice.say(&a_line);
        bob.say(&b_line);
        texts.extend([a_line, b_line]);
    }
    for c in [&mut alice, &mut bob, &mut carol] {
        sees_all(c, &texts);
    }
    let reference = carol.live();
    let seqs: Vec<u64> = reference.iter().map(|m| m.0).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "{reference:?}");
    assert_eq!(alice.live(), reference, "the same order on both relays");
    assert_eq!(bob.live(), reference);
    for c in [alice, bob, carol] {
        let (status, _) = c.finish();
        assert!(status.success());
    }
}

#[test]
fn a_nats_node_killed_loses_nothing_acknowledged_and_the_room_goes_on() {
    let _alone = alone();
    let mut cluster = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let a = relay(&cluster, dir.path(), None, "3");
    let mut alice = Client::join(a.addr, "alice", &[]);
    let mut bob = Client::join(a.addr, "bob", &[]);
    let before: Vec<String> = (0..20).map(|i| format!("before {i}")).collect();
    for line in &before {
        alice.say(line);
    }
    sees_all(&mut bob, &before);
    // The node that leads the room's stream: the two others elect a new leader, and the
    // lines sent meanwhile are refused (ERROR Storage) and resent until one takes them.
    let victim = cluster
        .stream_leader("URC_ROOM_lobby")
        .expect("the lobby's stream has a leader");
    cluster.kill(victim);
    let after: Vec<String> = (0..20).map(|i| format!("after {i}")).collect();
    for line in &after {
        alice.say(line);
    }
    sees_all(&mut bob, &after);
    let (status, events) = alice.finish();
    assert!(status.success(), "every line acknowledged: {events:?}");
    let live = bob.live();
    let seqs: Vec<u64> = live.iter().map(|m| m.0).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>(), "{live:?}");
}

#[test]
fn a_stopped_cluster_holds_the_lines_until_it_is_back_and_a_restart_keeps_the_history() {
    let _alone = alone();
    let mut cluster = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let a = relay(&cluster, dir.path(), None, "3");
    let mut alice = Client::join(a.addr, "alice", &[]);
    let mut bob = Client::join(a.addr, "bob", &[]);
    alice.say("first");
    bob.expect_text("first");

    cluster.stop_all();
    alice.say("while nats is down");
    a.expect_log("acknowledging nothing");
    cluster.start_all();
    let e = bob.expect(|e| e["event"] == "message" && e["text"] == "while nats is down");
    assert_eq!(e["seq"], 2);
    a.expect_log("NATS stores messages again");
    let (status, _) = alice.finish();
    assert!(status.success());
    drop(bob);

    // Everything restarted: the relay reads the room's history back from its stream.
    assert!(a.stop().success());
    cluster.stop_all();
    cluster.start_all();
    let a = relay(&cluster, dir.path(), None, "3");
    let mut carol = Client::join(a.addr, "carol", &["--history", "10"]);
    let mut history = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while history.len() < 2 && std::time::Instant::now() < deadline {
        let e = carol.expect(|e| e["event"] == "message");
        history.push((
            e["seq"].as_u64().unwrap(),
            e["text"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        history,
        [
            (1, "first".to_owned()),
            (2, "while nats is down".to_owned())
        ]
    );
}

#[test]
fn a_file_store_relays_history_moves_into_the_cluster_at_its_seqs_once() {
    let _alone = alone();
    let files = tempfile::tempdir().unwrap();
    let old = Relay::start(files.path(), &[]);
    let mut alice = Client::join(old.addr, "alice", &[]);
    for line in ["one", "two", "三"] {
        alice.say(line);
    }
    let (status, _) = alice.finish();
    assert!(status.success());
    assert!(old.stop().success());

    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let from = files.path().to_str().unwrap();
    let a = relay_with(&cluster, dir.path(), &["--import", from]);
    a.expect_log("imported the room's log into its NATS stream room=\"lobby\" put=3 held=3");
    a.expect_log("imported the names' owners into the cluster's bucket put=1 held=0");
    // alice's name came with her key: another key is refused it.
    let keys = tempfile::tempdir().unwrap();
    let other = keys.path().join("other.key");
    let (status, out, _) = pipe(
        a.addr,
        "alice",
        "",
        &["--json", "--identity", other.to_str().unwrap()],
    );
    assert!(!status.success(), "{out}");
    assert!(
        events(&out)
            .iter()
            .any(|e| e["message"]
                == "the name alice belongs to another key: choose another with --name"),
        "{out}"
    );
    let mut bob = Client::join(a.addr, "bob", &["--history", "10"]);
    let mut history = Vec::new();
    while history.len() < 3 {
        let e = bob.expect(|e| e["event"] == "message");
        history.push((
            e["seq"].as_u64().unwrap(),
            e["from"].as_str().unwrap().to_owned(),
            e["text"].as_str().unwrap().to_owned(),
        ));
    }
    let expected: Vec<(u64, String, String)> = [(1, "one"), (2, "two"), (3, "三")]
        .map(|(s, t)| (s, "alice".to_owned(), t.to_owned()))
        .into();
    assert_eq!(history, expected);
    bob.say("after the move");
    assert_eq!(bob.expect_text("after the move")["seq"], 4);
    drop(bob);
    assert!(a.stop().success());

    // Run again: nothing is put twice.
    let a = relay_with(&cluster, dir.path(), &["--import", from]);
    a.expect_log("imported the room's log into its NATS stream room=\"lobby\" put=0 held=3");
    a.expect_log("imported the names' owners into the cluster's bucket put=0 held=1");
}

#[test]
fn a_name_belongs_to_its_key_on_every_relay_of_the_cluster() {
    let _alone = alone();
    let cluster = Cluster::start(1);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = relay_with(&cluster, a_dir.path(), &[]);
    let b = relay(&cluster, b_dir.path(), Some(a_dir.path()), "1");
    let _alice = Client::join(a.addr, "alice", &[]);
    // Another key asks B for alice: refused once B has learnt the owner from the cluster's
    // bucket (a try that B welcomed before is ended; it exits at the end of its empty input
    // either way).
    let keys = tempfile::tempdir().unwrap();
    let other = keys.path().join("other.key");
    let other = ["--json", "--identity", other.to_str().unwrap()];
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, out, _) = pipe(b.addr, "alice", "", &other);
        if !status.success() {
            assert!(
                events(&out).iter().any(|e| e["event"] == "error"
                    && e["message"]
                        == "the name alice belongs to another key: choose another with --name"),
                "{out}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never refused the name: {out}\nA: {}\nB: {}",
            a.stderr.lock().unwrap(),
            b.stderr.lock().unwrap()
        );
        // Not to be taken for a flood of handshakes.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // B's own names are the cluster's too: a name first taken on B is refused on A.
    let _bob = Client::join(b.addr, "bob", &[]);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, out, _) = pipe(a.addr, "bob", "", &other);
        if !status.success() {
            assert!(
                events(&out).iter().any(|e| e["event"] == "error"
                    && e["message"]
                        == "the name bob belongs to another key: choose another with --name"),
                "{out}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "A never refused bob");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_relay_killed_mid_stream_sends_its_clients_to_another_and_nothing_is_lost_or_doubled() {
    let _alone = alone();
    let cluster = Cluster::start(3);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = relay(&cluster, a_dir.path(), None, "3");
    let b = relay(&cluster, b_dir.path(), Some(a_dir.path()), "3");
    let mut alice = Client::join_list(&format!("{},{}", a.addr, b.addr), "alice", &[]);
    let mut bob = Client::join_list(&format!("{},{}", b.addr, a.addr), "bob", &[]);
    let n = 200;
    for i in 0..n / 2 {
        alice.say(&format!("line {i:03}"));
    }
    // Part of the stream through, part of it in flight; then A hangs (its last turn's
    // messages published or not, their acknowledgements not sent), takes nothing more of
    // the rest, and dies without a word.
    bob.expect(|e| e["event"] == "message" && e["text"] == "line 040");
    let pid = a.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    for i in n / 2..n {
        alice.say(&format!("line {i:03}"));
    }
    a.crash();
    alice.expect(|e| {
        e["event"] == "notice"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("moving to the relay at {}", b.addr)))
    });
    while bob.live().len() < n {
        bob.expect(|e| e["event"] == "message");
    }
    let (status, alice_events) = alice.finish();
    assert!(
        status.success(),
        "every line acknowledged: {alice_events:#?}"
    );
    let typed: Vec<String> = (0..n).map(|i| format!("line {i:03}")).collect();
    let live = bob.live();
    let seen: Vec<String> = live.iter().map(|m| m.2.clone()).collect();
    assert_eq!(
        seen, typed,
        "bob (on B all along) saw each line once, in order"
    );
    let seqs: Vec<u64> = live.iter().map(|m| m.0).collect();
    assert_eq!(
        seqs,
        (1..=n as u64).collect::<Vec<_>>(),
        "stored once each: no seq for a copy"
    );
    let acked: Vec<u64> = (alice_events.iter())
        .filter(|e| e["event"] == "message" && e["from"] == "alice")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        acked,
        (1..=n as u64).collect::<Vec<_>>(),
        "alice's own, once each"
    );
}

#[test]
fn a_private_message_reaches_someone_on_another_relay_even_between_long_names() {
    let _alone = alone();
    let cluster = Cluster::start(1);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = relay_with(&cluster, a_dir.path(), &[]);
    let b = relay(&cluster, b_dir.path(), Some(a_dir.path()), "1");
    // Names long enough that their conversation's stream is named by a hash.
    let (her, him) = ("长".repeat(28), "名".repeat(28));
    let mut bob = Client::join(b.addr, &him, &[]);
    let mut alice = Client::join(a.addr, &her, &[]);
    alice.say(&format!("/msg {him} 你好, across the cluster"));
    let e = bob.expect(|e| e["event"] == "message" && e["text"] == "你好, across the cluster");
    assert_eq!(e["from"], her.as_str());
    bob.say(&format!("/msg {her} and back"));
    alice.expect_text("and back");
}

#[test]
fn who_and_presence_show_every_relays_members_and_a_dead_relays_expire() {
    let _alone = alone();
    let cluster = Cluster::start(1);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = relay(&cluster, a_dir.path(), None, "1");
    let b = relay(&cluster, b_dir.path(), Some(a_dir.path()), "1");
    let mut alice = Client::join(a.addr, "alice", &[]);
    let mut carol = Client::join(a.addr, "carol", &[]);
    let mut bob = Client::join(b.addr, "bob", &[]);
    for c in [&mut alice, &mut carol] {
        c.expect(|e| e["event"] == "joined" && e["name"] == "bob");
    }
    // B may read A's entries a moment after bob is in: asked again until it has them.
    let everyone = serde_json::json!(["alice", "bob", "carol"]);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        bob.say("/who");
        let names = bob.expect(|e| e["event"] == "who")["names"].clone();
        if names == everyone {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "bob's /who: {names}");
    }
    carol.say("/quit see you");
    let left = bob.expect(|e| e["event"] == "left" && e["name"] == "carol");
    assert_eq!(
        (left["reason"].as_str(), left["message"].as_str()),
        (Some("quit"), Some("see you"))
    );

    // A dies without a word: its lease stops, and within its expiry bob is told alice timed
    // out.
    let died = std::time::Instant::now();
    a.crash();
    let left = bob.expect_within(std::time::Duration::from_secs(30), |e| {
        e["event"] == "left" && e["name"] == "alice"
    });
    assert_eq!(left["reason"], "timeout");
    let took = died.elapsed();
    assert!(
        took <= std::time::Duration::from_secs(18),
        "told after {took:?}: the lease expires 15 s after the last"
    );
    bob.say("/who");
    assert_eq!(
        bob.expect(|e| e["event"] == "who")["names"],
        serde_json::json!(["bob"])
    );
    alice.kill();
    let _ = carol.finish();
    let (status, _) = bob.finish();
    assert!(status.success());
}
