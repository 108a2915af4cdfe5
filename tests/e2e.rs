//! End to end: a real `urc serve` on 127.0.0.1:0 and real `urc join` clients.

mod common;

use std::process::Stdio;

use common::{Client, Relay, events, messages, pipe, urc};

#[test]
fn three_clients_chat_and_each_message_reaches_the_others_once() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Client::join(relay.addr, "bob", &[]);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob");
    let mut carol = Client::join(relay.addr, "carol", &[]);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "carol");
    bob.expect(|e| e["event"] == "joined" && e["name"] == "carol");

    alice.say("你好，世界！");
    bob.say("hello from bob");
    carol.say("end");
    for c in [&mut alice, &mut bob, &mut carol] {
        let mut waiting = vec!["你好，世界！", "hello from bob", "end"];
        while !waiting.is_empty() {
            let e = c.expect(|e| e["event"] == "message");
            waiting.retain(|t| e["text"] != *t);
        }
    }
    // Every client delivered the same three messages, in the same order, once each.
    let reference = alice.live();
    assert_eq!(reference.len(), 3, "{reference:?}");
    let seqs: Vec<u64> = reference.iter().map(|m| m.0).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(bob.live(), reference);
    assert_eq!(carol.live(), reference);

    let log = std::fs::read_to_string(data.path().join("rooms/lobby/messages.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = events(&log);
    assert_eq!(records.len(), 3);
    for (record, (seq, from, text)) in records.iter().zip(&reference) {
        assert_eq!(record["seq"], *seq);
        assert_eq!(record["from"], from.as_str());
        assert_eq!(record["text"], text.as_str());
        assert!(record["time"].as_str().unwrap().ends_with('Z'));
    }
    assert!(
        reference
            .iter()
            .any(|m| m.1 == "alice" && m.2 == "你好，世界！")
    );
}

#[test]
fn presence_who_and_quit() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let bob = Client::join(relay.addr, "bob", &[]);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob");
    alice.say("/who");
    let who = alice.expect(|e| e["event"] == "who");
    assert_eq!(who["names"], serde_json::json!(["alice", "bob"]));
    let (status, _) = bob.finish();
    assert!(status.success());
    alice.expect(|e| e["event"] == "left" && e["name"] == "bob");
    alice.say("/quit");
    let (status, _) = alice.finish();
    assert!(status.success());
}

#[test]
fn a_silent_client_is_dropped_after_the_timeout() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &["--timeout", "2"]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let bob = Client::join(relay.addr, "bob", &[]);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob");
    bob.kill();
    let left = alice.expect(|e| e["event"] == "left" && e["name"] == "bob");
    assert_eq!(left["reason"], "timeout");
    // alice, who keeps sending keepalives, is still there.
    alice.say("/who");
    let who = alice.expect(|e| e["event"] == "who");
    assert_eq!(who["names"], serde_json::json!(["alice"]));
}

#[test]
fn a_name_in_use_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let _alice = Client::join(relay.addr, "alice", &[]);
    let (status, out, err) = pipe(relay.addr, "Alice", "hi\n", &["--json"]);
    assert!(!status.success());
    let evs = events(&out);
    assert!(
        evs.iter()
            .any(|e| e["event"] == "error" && e["message"].as_str().unwrap().contains("in use")),
        "{out}"
    );
    assert!(err.starts_with("urc: "), "{err}");
    assert!(messages(&evs).is_empty());
    let (status, _, err) = pipe(relay.addr, "bad name", "hi\n", &[]);
    assert!(!status.success());
    assert!(err.contains("invalid --name"), "{err}");
    // A look-alike (a Cyrillic а) is taken too, and told so.
    let (status, out, _) = pipe(relay.addr, "\u{0430}lice", "hi\n", &["--json"]);
    assert!(!status.success());
    let says = "the name \u{0430}lice looks like alice, a name in use: choose another with --name";
    assert!(
        events(&out)
            .iter()
            .any(|e| e["event"] == "error" && e["message"] == says),
        "{out}"
    );
}

#[test]
fn history_on_join_and_on_request_spans_many_pages() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    // 60 messages of about 900 bytes: one a page, so the history needs many datagrams.
    let lines: Vec<String> = (1..=60)
        .map(|i| format!("{i:03} {}", "话".repeat(300)))
        .collect();
    let (status, _, err) = pipe(
        relay.addr,
        "writer",
        &(lines.join("\n") + "\n"),
        &["--json"],
    );
    assert!(status.success(), "{err}");

    let mut reader = Client::join(relay.addr, "reader", &["--history", "50"]);
    reader.say("/history 5");
    let mut history = Vec::new();
    while history.len() < 55 {
        let e = reader.expect(|e| e["event"] == "message");
        assert_eq!(e["history"], true);
        history.push((
            e["seq"].as_u64().unwrap(),
            e["text"].as_str().unwrap().to_owned(),
        ));
    }
    let seqs: Vec<u64> = history.iter().map(|h| h.0).collect();
    let expected: Vec<u64> = (11..=60).chain(56..=60).collect();
    assert_eq!(seqs, expected);
    assert_eq!(history[0].1, lines[10]);
    assert_eq!(history[54].1, lines[59]);
}

#[test]
fn a_long_line_is_sent_as_several_messages_split_between_characters() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let long = "中文字符".repeat(250); // 3000 bytes: 999 + 999 + 999 + 3
    let (status, out, err) = pipe(relay.addr, "poet", &format!("{long}\n"), &["--json"]);
    assert!(status.success(), "{err}");
    let own = messages(&events(&out));
    assert_eq!(own.len(), 4, "{out}");
    assert!(own.iter().all(|m| m.2.len() <= 1000 && !m.3));
    let joined: String = own.iter().map(|m| m.2.as_str()).collect();
    assert_eq!(joined, long);
}

#[test]
fn a_restarted_relay_keeps_history_and_continues_the_sequence() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let (status, _, err) = pipe(relay.addr, "a", "one\ntwo\nthree\n", &[]);
    assert!(status.success(), "{err}");
    assert!(relay.stop().success());

    let relay = Relay::start(data.path(), &[]);
    assert!(relay.stderr.lock().unwrap().contains("latest seq 3"));
    let (status, out, err) = pipe(relay.addr, "b", "four\n", &["--json", "--history", "10"]);
    assert!(status.success(), "{err}");
    let got = messages(&events(&out));
    let summary: Vec<(u64, &str, bool)> = got.iter().map(|m| (m.0, m.2.as_str(), m.3)).collect();
    assert_eq!(
        summary,
        [
            (1, "one", true),
            (2, "two", true),
            (3, "three", true),
            (4, "four", false)
        ]
    );
}

#[test]
fn pipe_mode_prints_text_lines_and_exits_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let (status, out, err) = pipe(relay.addr, "bot", "hi there\n/nope\n", &[]);
    assert!(status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"-- joined as bot"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("error: unknown command /nope")),
        "{out}"
    );
    let said = lines
        .iter()
        .find(|l| l.ends_with(" bot: hi there"))
        .expect(&out);
    // HH:MM before the name.
    assert_eq!(said.as_bytes()[2], b':');
    let log = std::fs::read_to_string(data.path().join("rooms/lobby/messages.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        1,
        "the unknown command was not sent: {log}"
    );
}

#[test]
fn unacknowledged_messages_make_the_client_fail_at_the_end_and_are_named() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut lonely = Client::join(relay.addr, "lonely", &["--wait", "1"]);
    relay.crash();
    lonely.say("anyone there?");
    let stderr = lonely.stderr.clone();
    let (status, _) = lonely.finish();
    assert!(!status.success());
    let err = stderr.lock().unwrap();
    assert!(
        err.contains("1 message(s) not acknowledged by the relay, so perhaps not delivered: \"anyone there?\""),
        "{err}"
    );
}

/// Over IPv6 loopback: the relay bound on `[::1]:0` (its socket made for the address's
/// family), two clients chat through it. Skipped, saying so, where the machine has no IPv6.
#[test]
fn clients_chat_over_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start_at("[::1]:0", data.path(), &[]);
    assert!(relay.addr.is_ipv6(), "{}", relay.addr);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Client::join(relay.addr, "bob", &[]);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob");
    alice.say("你好 over IPv6");
    bob.expect_text("你好 over IPv6");
    bob.say("and back");
    alice.expect_text("and back");
    bob.expect_text("and back");
    assert_eq!(alice.live(), bob.live());
    assert_eq!(alice.live().len(), 2);
}

#[test]
fn a_second_relay_on_the_same_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = Relay::start(dir.path(), &[]);
    let pid = first.child.id();
    for extra in [&[][..], &["--repair-log"][..]] {
        let out = urc()
            .args(["serve", "--bind", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let want = format!(
            "urc: another relay (pid {pid}) is using the data directory {}: stop it first, or give this relay another --data\n",
            dir.path().display()
        );
        // One line, the error, and nothing else (no log line of a relay that half started).
        assert!(stderr.ends_with(&want), "{extra:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{extra:?}: {stderr}");
    }
    // The first relay is unharmed and still serves.
    let mut alice = Client::join(first.addr, "alice", &[]);
    alice.say("still here");
    alice.expect(|e| e["event"] == "message" && e["text"] == "still here");
    drop(first);
    // Once it is gone, the directory is free again.
    let again = Relay::start(dir.path(), &[]);
    drop(again);
}

/// A joined session sends the real relay (a debug build here, where every addition is checked)
/// csns, bases and history ranges at their extremes: the relay refuses what is past the top,
/// takes what is at it, and stays up.
#[test]
fn numbers_at_their_extremes_do_not_break_a_debug_relay() {
    use std::time::Duration;
    use urc::proto::wire::{MAX_CSN, Packet, Sent};
    use uuid::Uuid;

    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let mut sealed = common::Sealed::connect(relay.addr);
    // The answer to `p`: the next packet but the (empty) join history.
    fn answer(sealed: &mut common::Sealed, p: &Packet) -> Packet {
        sealed.send(&p.encode());
        loop {
            let packet = sealed.recv(Duration::from_secs(5)).expect("an answer");
            match Packet::decode(&packet).unwrap() {
                Packet::HistoryPage { req: 0, .. } => continue,
                answer => return answer,
            }
        }
    }
    let join = Packet::Join {
        room: "lobby".into(),
        name: "edge".into(),
        history: 0,
        instance: Uuid::from_u128(7),
    };
    let Packet::Welcome { token, .. } = answer(&mut sealed, &join) else {
        panic!("not welcomed")
    };
    let send = |csn: u64, base: u64, text: &str| Packet::Send {
        token,
        base,
        messages: vec![Sent {
            room: 0,
            csn,
            id: Uuid::new_v4(),
            text: text.into(),
        }],
    };
    // Past the top: dropped as malformed, no answer (a PING's PONG is the next thing heard).
    for p in [
        send(u64::MAX, 1, "x"),
        send(1, u64::MAX, "x"),
        send(u64::MAX, u64::MAX, "x"),
    ] {
        sealed.send(&p.encode());
    }
    assert!(matches!(
        answer(&mut sealed, &Packet::Ping { token }),
        Packet::Pong { rooms } if rooms[0].latest == 0
    ));
    // At the top: taken, and the same csn again is a retransmission.
    assert!(matches!(
        answer(&mut sealed, &send(MAX_CSN, MAX_CSN, "top")),
        Packet::Ack { .. }
    ));
    sealed.send(&send(MAX_CSN, MAX_CSN, "again").encode());
    for from in [u64::MAX, MAX_CSN, 2, 1, 0] {
        let answer = answer(
            &mut sealed,
            &Packet::History {
                room: 0,
                token,
                req: 1,
                from,
                count: u16::MAX,
            },
        );
        assert!(
            matches!(answer, Packet::HistoryPage { req: 1, .. }),
            "{answer:?}"
        );
    }
    assert!(matches!(
        answer(&mut sealed, &Packet::Ping { token }),
        Packet::Pong { rooms } if rooms[0].latest == 1
    ));
    let log = std::fs::read_to_string(dir.path().join("rooms/lobby/messages.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1);
    assert!(log.contains("\"text\":\"top\""));
    assert!(relay.stop().success(), "still up, and stops cleanly");
}

/// A data directory of the relay before rooms (its log `<data>/messages.jsonl`) is served as
/// the room lobby: the log moves, unchanged, into `rooms/lobby/`, the relay says so, history
/// gives every message with its seq and id, and the next message takes the next seq.
#[test]
fn a_one_room_log_is_served_as_the_lobby_with_every_seq_and_id_kept() {
    let data = tempfile::tempdir().unwrap();
    let ids = [
        "6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a21",
        "6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a22",
        "6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a23",
    ];
    let old: String = (ids.iter().enumerate())
        .map(|(i, id)| {
            format!(
                "{{\"seq\":{},\"id\":\"{id}\",\"from\":\"alice\",\"text\":\"line {}\",\"time\":\"2026-11-25T08:00:00.123Z\"}}\n",
                i + 1,
                i + 1
            )
        })
        .collect();
    std::fs::write(data.path().join("messages.jsonl"), &old).unwrap();
    std::fs::write(data.path().join("stored-seq"), "3\n").unwrap();
    let relay = Relay::start(data.path(), &[]);
    relay.expect_log("it is the room lobby, every seq and id kept");
    let lobby = data.path().join("rooms/lobby");
    assert!(!data.path().join("messages.jsonl").exists());
    // The old mark is the room's now, in the relay-wide file of every room's last seq stored.
    let marks = std::fs::read_to_string(data.path().join("stored-seqs")).unwrap();
    assert!(marks.lines().any(|l| l == "lobby 3"), "{marks}");
    assert!(lobby.join("messages.jsonl").exists() && !lobby.join("stored-seq").exists());
    let mut bob = Client::join(relay.addr, "bob", &["--history", "10"]);
    for (i, id) in ids.iter().enumerate() {
        let e = bob.expect(|e| e["event"] == "message");
        assert_eq!(
            (e["seq"].as_u64(), e["id"].as_str(), e["text"].as_str()),
            (
                Some(i as u64 + 1),
                Some(*id),
                Some(format!("line {}", i + 1).as_str())
            )
        );
    }
    bob.say("after the upgrade");
    let e = bob.expect(|e| e["event"] == "message" && e["text"] == "after the upgrade");
    assert_eq!(e["seq"], 4);
    let log = std::fs::read_to_string(lobby.join("messages.jsonl")).unwrap();
    assert!(log.starts_with(&old), "the old records unchanged");
    assert_eq!(log.lines().count(), 4);
}

/// Three people in two rooms over real UDP: alice (`--room lobby --room ops`), bob (ops only)
/// and carol (the lobby, by default). What is said in ops reaches ops's members with its room,
/// and never carol; each room has its own log under `rooms/`, readable as JSON; after a relay
/// restart every room goes on from its own seq, and entering one gives its history.
#[test]
fn two_rooms_stay_apart_and_a_restart_keeps_both() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &["--room", "lobby", "--room", "#Ops"]);
    alice.expect(|e| e["event"] == "entered" && e["room"] == "ops");
    let mut bob = Client::join(relay.addr, "bob", &["--room", "ops"]);
    let mut carol = Client::join(relay.addr, "carol", &[]);
    let (mut bob_came, mut carol_came) = (false, false);
    while !(bob_came && carol_came) {
        let e = alice.expect(|e| e["event"] == "joined");
        bob_came |= e["name"] == "bob" && e["room"] == "ops";
        carol_came |= e["name"] == "carol" && e["room"] == "lobby";
    }
    // alice types to her first room, then to ops.
    alice.say("hello lobby");
    alice.say("/switch ops");
    alice.say("hello ops");
    let m = bob.expect_text("hello ops");
    assert_eq!(
        (m["room"].as_str(), m["seq"].as_u64()),
        (Some("ops"), Some(1))
    );
    bob.say("hi alice");
    let m = carol.expect_text("hello lobby");
    assert_eq!(
        (m["room"].as_str(), m["seq"].as_u64()),
        (Some("lobby"), Some(1))
    );
    let m = alice.expect_text("hi alice");
    assert_eq!(
        (m["room"].as_str(), m["seq"].as_u64()),
        (Some("ops"), Some(2))
    );
    carol.say("just us here");
    alice.expect_text("just us here");
    let (_, carol_saw) = carol.finish();
    let leaks: Vec<_> = (carol_saw.iter())
        .filter(|e| e["room"] == "ops" || e["text"] == "hello ops" || e["name"] == "bob")
        .collect();
    assert!(leaks.is_empty(), "carol saw {leaks:?}");
    let (_, bob_saw) = bob.finish();
    assert!(
        !(bob_saw.iter()).any(|e| e["room"] == "lobby" || e["text"] == "just us here"),
        "{bob_saw:?}"
    );
    alice.finish();
    let log = |room: &str| {
        let text =
            std::fs::read_to_string(data.path().join(format!("rooms/{room}/messages.jsonl")))
                .unwrap();
        (text.lines())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["seq"].as_u64().unwrap(),
                    v["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        log("ops"),
        [(1, "hello ops".into()), (2, "hi alice".into())]
    );
    assert_eq!(
        log("lobby"),
        [(1, "hello lobby".into()), (2, "just us here".into())]
    );
    assert!(relay.stop().success());

    let relay = Relay::start(data.path(), &[]);
    relay.expect_log("and 1 other room(s)");
    let (status, out, err) = pipe(
        relay.addr,
        "dave",
        "/join #ops\nback in ops\n",
        &["--json", "--history", "10"],
    );
    assert!(status.success(), "{err}");
    let got: Vec<(String, u64, String, bool)> = (events(&out).iter())
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["room"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
                e["text"].as_str().unwrap().to_owned(),
                e["history"].as_bool().unwrap(),
            )
        })
        .collect();
    let want =
        |room: &str, seq, text: &str, history| (room.to_owned(), seq, text.to_owned(), history);
    assert_eq!(
        got,
        [
            want("lobby", 1, "hello lobby", true),
            want("lobby", 2, "just us here", true),
            want("ops", 1, "hello ops", true),
            want("ops", 2, "hi alice", true),
            want("ops", 3, "back in ops", false),
        ]
    );
}

/// Room names and the relay's room limit, as a user meets them: a bad `--room` stops the
/// client at once, a bad `/join` is explained, and a relay at its `--max-rooms` refuses a new
/// room by name and says why, while its rooms may still be entered.
#[test]
fn room_limits_and_names_are_refused_clearly() {
    let (status, _, err) = pipe(
        "127.0.0.1:9".parse().unwrap(),
        "zed",
        "",
        &["--room", "no way"],
    );
    assert!(!status.success());
    assert!(
        err.contains("invalid --room no way: the room's name has ' ': a room's name is 1 to 32 ASCII letters, digits, - or _"),
        "{err}"
    );
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &["--max-rooms", "2"]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    alice.say("/join ops");
    alice.expect(|e| e["event"] == "entered" && e["room"] == "ops");
    alice.say("/join third");
    let e = alice.expect(|e| e["event"] == "error");
    assert_eq!(
        e["message"],
        "cannot enter #third: the relay has 2 rooms, the most it may have (its --max-rooms): enter one of those"
    );
    alice.say("/join bad!");
    let e = alice.expect(|e| e["event"] == "error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("the room's name has '!'"),
        "{e}"
    );
    alice.say("/switch ops");
    alice.say("in ops");
    let m = alice.expect(|e| e["event"] == "message" && e["text"] == "in ops");
    assert_eq!(m["room"], "ops");
    alice.finish();
}

/// A private conversation as users meet it: `/msg` reaches the one person and nobody else,
/// `/query` answers, both sides keep one order, it is on disk as `dm/alice+bob/`, and after a
/// relay restart its reader, who left, is let in to it at once and shown it, once. (What came
/// since he was last there alone is the terminal's: see tests/terminal.rs.)
#[test]
fn a_private_conversation_reaches_the_two_and_waits_for_the_one_who_left() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Client::join(relay.addr, "bob", &[]);
    let mut carol = Client::join(relay.addr, "carol", &[]);
    let dm_of = |e: &serde_json::Value| e["dm"].as_str().map(str::to_owned);
    alice.say("/msg bob psst, bob");
    let m = bob.expect_text("psst, bob");
    assert_eq!(
        (dm_of(&m).as_deref(), m["seq"].as_u64()),
        (Some("alice"), Some(1))
    );
    assert!(m.get("room").is_none(), "{m}");
    let own = alice.expect_text("psst, bob");
    assert_eq!(dm_of(&own).as_deref(), Some("bob"));
    bob.say("/query alice");
    bob.say("hi alice");
    let m = alice.expect_text("hi alice");
    assert_eq!(
        (dm_of(&m).as_deref(), m["seq"].as_u64()),
        (Some("bob"), Some(2))
    );
    carol.say("/msg alice for alice only");
    let m = alice.expect_text("for alice only");
    assert_eq!(dm_of(&m).as_deref(), Some("carol"));
    carol.say("lobby is still the lobby");
    bob.expect(|e| e["text"] == "lobby is still the lobby" && e["room"] == "lobby");
    let (_, carol_saw) = carol.finish();
    let leaks: Vec<_> = (carol_saw.iter())
        .filter(|e| e["text"] == "psst, bob" || e["text"] == "hi alice" || e["dm"] == "bob")
        .collect();
    assert!(leaks.is_empty(), "carol saw {leaks:?}");
    let (status, bob_saw) = bob.finish();
    assert!(status.success());
    assert!(
        !(bob_saw.iter()).any(|e| e["text"] == "for alice only" || e["dm"] == "carol"),
        "{bob_saw:?}"
    );
    // Nobody was told of anyone coming or going in a private conversation.
    assert!(
        !(bob_saw.iter())
            .any(|e| (e["event"] == "joined" || e["event"] == "left") && e.get("dm").is_some()),
        "{bob_saw:?}"
    );
    alice.say("/msg bob while you were away");
    alice.expect(|e| e["event"] == "message" && e["text"] == "while you were away");
    let (status, _) = alice.finish();
    assert!(status.success());
    let text = std::fs::read_to_string(data.path().join("dm/alice+bob/messages.jsonl")).unwrap();
    let log: Vec<(u64, String)> = (text.lines())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        log,
        [
            (1, "psst, bob".into()),
            (2, "hi alice".into()),
            (3, "while you were away".into())
        ]
    );
    assert!(relay.stop().success());

    let relay = Relay::start(data.path(), &[]);
    relay.expect_log("and 2 other room(s)");
    let mut bob = Client::join(relay.addr, "bob", &[]);
    let m = bob.expect(|e| e["event"] == "message" && e["text"] == "while you were away");
    assert_eq!(
        (
            dm_of(&m).as_deref(),
            m["seq"].as_u64(),
            m["history"].as_bool()
        ),
        (Some("alice"), Some(3), Some(true))
    );
    bob.say("/rooms");
    bob.expect(|e| e["event"] == "notice" && e["message"] == "2. @alice");
    let (_, bob_saw) = bob.finish();
    let shown: Vec<u64> = (bob_saw.iter())
        .filter(|e| e["event"] == "message" && e["dm"] == "alice")
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(shown, [1, 2, 3], "each once, in order: {bob_saw:?}");
}
