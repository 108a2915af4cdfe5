//! The client core's knowledge of who is in the room, against datagrams made by hand: a
//! reconciling answer with a page lost, a message that comes after its sender's leave.

use std::time::{Duration, Instant};

use urc::client::{Client, Config, Event};
use urc::proto::message::{Message, Millis};
use urc::proto::wire::{Change, ErrorCode, LeaveReason, Packet, Token};
use uuid::Uuid;

/// A client and the relay's side of it: what the relay would send.
struct Room {
    client: Client,
    now: Instant,
    token: Token,
}

impl Room {
    /// A client joined as alice, its first WHO answered with `others`.
    fn joined(others: &[&str]) -> Room {
        let now = Instant::now();
        let config = Config {
            rooms: Vec::new(),
            name: "alice".into(),
            history: 0,
            since: None,
            seen: Default::default(),
            relays: Vec::new(),
        };
        let mut client = Client::new(config, now);
        let Some(Ok(Packet::Join { .. })) = client.poll_transmit().map(|b| Packet::decode(&b))
        else {
            panic!("the client did not join first");
        };
        let mut room = Room {
            client,
            now,
            token: Token([7; 16]),
        };
        room.welcome();
        room.wait(Duration::ZERO);
        room.answer_who(&[others], &[]);
        room.events();
        room
    }

    /// The relay sends `packet`.
    fn send(&mut self, packet: &Packet) {
        self.client.handle(self.now, &packet.encode());
    }

    fn welcome(&mut self) {
        let welcome = Packet::Welcome {
            token: self.token,
            name: "alice".into(),
            latest: 0,
            timeout_ms: 30_000,
        };
        self.send(&welcome);
    }

    /// Time passes, the client's timers run.
    fn wait(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..10_000 {
            let Some(t) = self.client.poll_timeout().filter(|t| *t <= end) else {
                break;
            };
            self.now = t.max(self.now);
            self.client.handle_timeout(self.now);
        }
        self.now = end;
    }

    /// The WHO requests the client sent since last asked.
    fn asked(&mut self) -> Vec<u32> {
        let mut reqs = Vec::new();
        while let Some(bytes) = self.client.poll_transmit() {
            if let Ok(Packet::Who { req, .. }) = Packet::decode(&bytes) {
                reqs.push(req);
            }
        }
        reqs
    }

    /// Answers the latest WHO: `pages` arrive, `lost` pages do not (all count in the total).
    fn answer_who(&mut self, pages: &[&[&str]], lost: &[&[&str]]) {
        let req = *self.asked().last().expect("a WHO was asked");
        // The asker is in the answer too: on the first page here.
        let count: usize = pages.iter().chain(lost).map(|p| p.len()).sum();
        let total = u16::try_from(count + 1).unwrap();
        for (k, page) in pages.iter().enumerate() {
            let mut names: Vec<String> = page.iter().map(|n| n.to_string()).collect();
            if k == 0 {
                names.insert(0, "alice".into());
            }
            let names = Packet::Names {
                room: 0,
                req,
                total,
                names,
            };
            self.send(&names);
        }
    }

    fn presence(&mut self, name: &str, joined: bool) {
        let change = Change {
            joined,
            reason: LeaveReason::Quit,
            name: name.into(),
            message: None,
        };
        let packet = Packet::Presence {
            room: 0,
            changes: vec![change],
        };
        self.send(&packet);
    }

    /// The relay restarted: the client hears NotJoined, joins again, is welcomed.
    fn rejoin(&mut self) {
        let refused = Packet::Error {
            code: ErrorCode::NotJoined,
            id: Uuid::from_bytes(self.token.0),
            message: "not joined: join again".into(),
        };
        self.send(&refused);
        self.token = Token([8; 16]);
        self.welcome();
    }

    /// Who arrived and left, as told, since last asked.
    fn events(&mut self) -> Vec<String> {
        let mut told = Vec::new();
        while let Some(e) = self.client.poll_event() {
            match e {
                Event::Joined { room: _, name } => told.push(format!("+{name}")),
                Event::Left { name, .. } => told.push(format!("-{name}")),
                _ => {}
            }
        }
        told
    }
}

#[test]
fn a_reconciling_answer_with_a_page_lost_tells_nobody_leaving() {
    let mut room = Room::joined(&["bo", "cy", "dee"]);
    room.rejoin();
    // After the grace, the client asks who is there; the page with cy and dee is lost.
    room.wait(Duration::from_secs(7));
    room.answer_who(&[&["bo"]], &[&["cy", "dee"]]);
    room.wait(Duration::from_secs(5));
    assert_eq!(
        room.events(),
        Vec::<String>::new(),
        "a lost page is nobody leaving"
    );
    // Asked again: the whole answer this time, dee gone meanwhile.
    room.answer_who(&[&["bo"], &["cy"]], &[]);
    assert_eq!(room.events(), ["-dee"]);
    assert_eq!(room.client.present(), ["bo", "cy"]);
    // cy's real leave is told.
    room.presence("cy", false);
    assert_eq!(room.events(), ["-cy"]);
}

#[test]
fn a_message_after_its_senders_leave_does_not_bring_them_back() {
    let mut room = Room::joined(&["bo"]);
    room.presence("bo", false);
    assert_eq!(room.events(), ["-bo"]);
    // bo's last word, overtaken by the PRESENCE that he left.
    let said = Packet::Messages {
        room: 0,
        messages: vec![Message {
            seq: 1,
            id: Uuid::new_v4(),
            from: "bo".into(),
            text: "bye".into(),
            time: Millis(1_795_593_600_000),
        }],
    };
    room.send(&said);
    assert_eq!(room.client.present(), Vec::<String>::new());
    // So the next rejoin has nobody to tell leaving twice.
    room.rejoin();
    room.wait(Duration::from_secs(7));
    room.answer_who(&[&[]], &[]);
    assert_eq!(room.events(), Vec::<String>::new());
}

/// bo's arrival was lost. The PONGs say three are in the room, alice knows of one other: once
/// they have said so for 3 s, she asks who is there, and shows bo's arrival from the answer.
/// While the count keeps moving (a crowd joining), or matches, she asks nothing.
#[test]
fn a_lost_arrival_is_noticed_by_the_count_in_pongs_and_told() {
    let mut room = Room::joined(&["cy"]);
    let pong = |members| Packet::Pong {
        rooms: vec![urc::proto::wire::Latest {
            room: 0,
            latest: 0,
            members,
        }],
    };
    // The count matches: nothing to ask.
    for _ in 0..5 {
        room.send(&pong(2));
        room.wait(Duration::from_secs(2));
    }
    assert_eq!(room.asked(), Vec::<u32>::new());
    // A crowd joining: the count changes at every PONG.
    for members in 3..8 {
        room.send(&pong(members));
        room.wait(Duration::from_secs(2));
    }
    assert_eq!(
        room.asked(),
        Vec::<u32>::new(),
        "asked while the count moved"
    );
    // Settled at 3, and alice's list has 1 other: asked once, after 3 s.
    room.send(&pong(3));
    room.wait(Duration::from_secs(2));
    room.send(&pong(3));
    assert_eq!(room.asked(), Vec::<u32>::new(), "asked before 3 s");
    room.wait(Duration::from_secs(1));
    room.send(&pong(3));
    room.wait(Duration::ZERO);
    room.answer_who(&[&["bo", "cy"]], &[]);
    assert_eq!(room.events(), ["+bo"]);
    assert_eq!(room.client.present(), ["bo", "cy"]);
    // Right again: nothing more is asked.
    for _ in 0..3 {
        room.send(&pong(3));
        room.wait(Duration::from_secs(2));
    }
    assert_eq!(room.asked(), Vec::<u32>::new());
}
