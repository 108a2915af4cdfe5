//! Load within every limit, from many sessions at once, beside two members who chat: floods of
//! history and WHO requests, many senders at their rate, messages parked out of order, a relay
//! that stopped for a while, a wall clock stepped. The relay serves chat first and in fair
//! shares, charges answers to whoever asked, and keeps its memory bounded. (The same attacks at
//! full scale, against a real relay process, are `urc bench --attack …`.)

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use urc::proto::wire::{MAX_CSN, Packet, Sent, Token};
use urc::relay::{
    Config, MAX_ANSWERS, MAX_PARKED_BYTES, MAX_PARKED_PER_IP, MAX_PARKED_PER_NETWORK, parked_cost,
};
use uuid::Uuid;

use crate::driver::Driver;

const MIB: f64 = 1024.0 * 1024.0;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The address of session `port` at IP 10.`a`.`b`.`c`.
fn at(a: u8, b: u8, c: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, a, b, c], port))
}

/// Joins `n` sessions from `ip(k)`, named `prefix{k}`, without keeping what they are sent.
fn crowd(
    d: &mut Driver,
    n: usize,
    prefix: &str,
    ip: impl Fn(usize) -> SocketAddr,
) -> Vec<(SocketAddr, Token)> {
    (0..n)
        .map(|k| {
            let a = ip(k);
            (a, d.member(a, &format!("{prefix}{k}")))
        })
        .collect()
}

/// Two members who chat, alice and bob, on addresses of their own.
struct Pair {
    alice: (SocketAddr, Token),
    bob: (SocketAddr, Token),
    said: u64,
}

impl Pair {
    fn join(d: &mut Driver) -> Pair {
        let (alice, bob) = (at(0, 0, 2, 4000), at(0, 0, 3, 4000));
        let alice = (alice, d.member(alice, "alice"));
        let bob = (bob, d.member(bob, "bob"));
        Pair {
            alice,
            bob,
            said: 0,
        }
    }

    fn watch(&self) -> Option<HashSet<SocketAddr>> {
        Some([self.alice.0, self.bob.0].into())
    }

    /// alice's next SEND.
    fn next(&mut self) -> (SocketAddr, Vec<u8>) {
        self.said += 1;
        let (a, t) = self.alice;
        let send = Packet::send_one(
            t,
            self.said,
            self.said,
            Uuid::new_v4(),
            &format!("alice {}", self.said),
        );
        (a, send.encode())
    }

    /// Checks that alice's last line was stored, acknowledged to her and sent to bob in the
    /// turn it arrived in, or the next (`since`: `d.sent.len()` before it).
    fn check_last(&self, d: &Driver, since: usize, arrived_in: u64) {
        let text = format!("alice {}", self.said);
        let m = d
            .log
            .iter()
            .rev()
            .find(|m| m.text == text)
            .unwrap_or_else(|| panic!("{text} not stored"));
        // `arrived_in` is the count of turns before the one it arrived in.
        let waited = d.written_in[&m.seq] - arrived_in - 1;
        assert!(waited <= 1, "{text} waited {waited} turns");
        let to_bob = d.sent[since..].iter().any(|(to, p)| {
            *to == self.bob.0 && matches!(p, Packet::Messages { room: _,  messages } if messages.iter().any(|x| x.seq == m.seq))
        });
        assert!(to_bob, "{text} did not reach bob");
        let acked = d.sent[since..].iter().any(|(to, p)| {
            *to == self.alice.0
                && matches!(p, Packet::Ack { acks } if acks.iter().any(|a| a.seq == m.seq))
        });
        assert!(acked, "{text} was not acknowledged");
    }
}

/// Bytes the relay sent to `sessions` in all.
fn bytes_to(d: &Driver, sessions: &[(SocketAddr, Token)]) -> usize {
    sessions
        .iter()
        .map(|(a, _)| d.bytes_out.get(a).copied().unwrap_or(0))
        .sum()
}

/// 64 sessions of one address ask for 1000 messages of history 5 times a second each (the
/// request rate): they are sent what their address's allowance allows, no more, while alice's
/// lines are taken, acknowledged and fanned out in their turn, and bob's own history request
/// is answered at once.
#[test]
fn a_history_flood_from_one_address_gets_its_share_and_delays_no_chat() {
    let config = Config {
        cache: 200,
        bulk_rate_per_ip: MIB,
        ..Config::default()
    };
    // Long texts, read from the log (the cache holds the last 200): a page a message.
    let mut d = Driver::with_log_of(config.clone(), 3000, 1000);
    let mut pair = Pair::join(&mut d);
    d.watch = Some(HashSet::new());
    let flood = crowd(&mut d, 64, "f", |k| at(0, 0, 1, 5000 + k as u16));
    d.watch = pair.watch();
    let start = (bytes_to(&d, &flood), d.now);
    let seconds = 3;
    for step in 0..seconds * 20 {
        // Every 50 ms a quarter of the flood asks: each session every 200 ms.
        let mut datagrams: Vec<(SocketAddr, Vec<u8>)> = (flood.iter().enumerate())
            .filter(|(k, _)| k % 4 == step % 4)
            .map(|(_, &(a, token))| {
                let ask = Packet::History {
                    room: 0,
                    token,
                    req: step as u32,
                    from: 0,
                    count: 1000,
                };
                (a, ask.encode())
            })
            .collect();
        let talks = step % 5 == 0;
        if talks {
            datagrams.push(pair.next());
        }
        let (since, turn) = (d.sent.len(), d.turns);
        d.turn(&datagrams);
        if talks {
            pair.check_last(&d, since, turn);
        }
        if step == 30 {
            // bob repairs a gap meanwhile: five messages of the log, read from it.
            let since = d.sent.len();
            let ask = Packet::History {
                room: 0,
                token: pair.bob.1,
                req: 99,
                from: 1000,
                count: 5,
            };
            d.packet(pair.bob.0, &ask);
            let got: usize = (d.sent[since..].iter())
                .filter_map(|(to, p)| match p {
                    Packet::HistoryPage {
                        req: 99, messages, ..
                    } if *to == pair.bob.0 => Some(messages.len()),
                    _ => None,
                })
                .sum();
            assert_eq!(got, 5, "bob's request waited behind the flood");
        }
        d.advance(ms(50));
    }
    let sent = bytes_to(&d, &flood) - start.0;
    let secs = (d.now - start.1).as_secs_f64();
    // Its allowance: the rate, its burst, and what one turn sent before its debt showed (the
    // turn's share of answers and a chunk).
    let bound = MIB * secs + MIB / 4.0 + (256.0 + 40.0) * 1024.0;
    assert!(
        (sent as f64) <= bound,
        "{sent} bytes to the flood in {secs} s, bound {bound}"
    );
    assert!(
        (sent as f64) > 0.5 * MIB * secs,
        "the flood was still served: {sent} bytes"
    );
    let most = (flood.iter())
        .filter_map(|(a, _)| d.relay.clients().get(a).map(|s| s.answers_waiting()))
        .max();
    assert!(
        most.is_some_and(|n| n > 4 && n <= MAX_ANSWERS),
        "answers waiting: {most:?}"
    );
    assert!(
        d.most_in_a_turn < 1000,
        "{} datagrams in one turn",
        d.most_in_a_turn
    );
}

/// 64 sessions of one address ask WHO 5 times a second each in a room of a thousand: their
/// answers are held to their address's allowance, alice's lines go on in their turn, and
/// alice's own WHO brings every name, each once, while the flood goes on.
#[test]
fn a_who_flood_in_a_large_room_gets_its_share_and_delays_no_chat() {
    let config = Config {
        bulk_rate_per_ip: MIB / 2.0,
        ..Config::default()
    };
    let mut d = Driver::new(config);
    let mut pair = Pair::join(&mut d);
    d.watch = Some(HashSet::new());
    let room = crowd(&mut d, 1000, "m", |k| {
        at(1, (k / 50) as u8, (k % 50) as u8, 6000)
    });
    let flood = crowd(&mut d, 64, "f", |k| at(0, 0, 1, 5000 + k as u16));
    d.watch = pair.watch();
    let start = (bytes_to(&d, &flood), d.now);
    let mut names = Vec::new();
    for step in 0..40 {
        let mut datagrams: Vec<(SocketAddr, Vec<u8>)> = (flood.iter().enumerate())
            .filter(|(k, _)| k % 4 == step % 4)
            .map(|(_, &(a, token))| {
                (
                    a,
                    Packet::Who {
                        room: 0,
                        token,
                        req: step as u32,
                    }
                    .encode(),
                )
            })
            .collect();
        let talks = step % 5 == 0;
        if talks {
            datagrams.push(pair.next());
        }
        if step == 10 {
            datagrams.push((
                pair.alice.0,
                Packet::Who {
                    room: 0,
                    token: pair.alice.1,
                    req: 7,
                }
                .encode(),
            ));
        }
        let (since, turn) = (d.sent.len(), d.turns);
        d.turn(&datagrams);
        if talks {
            pair.check_last(&d, since, turn);
        }
        for (to, p) in &d.sent[since..] {
            if let Packet::Names {
                room: _,
                req: 7,
                names: page,
                total,
            } = p
                && *to == pair.alice.0
            {
                names.extend(page.iter().cloned());
                assert!(usize::from(*total) >= names.len());
            }
        }
        d.advance(ms(50));
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        (names.len(), sorted.len()),
        (1066, 1066),
        "every name, once"
    );
    let sent = bytes_to(&d, &flood) - start.0;
    let secs = (d.now - start.1).as_secs_f64();
    let bound = MIB / 2.0 * secs + MIB / 8.0 + 64.0 * 1200.0;
    assert!(
        (sent as f64) <= bound,
        "{sent} bytes of names in {secs} s, bound {bound}"
    );
    assert_eq!(d.relay.clients().len(), 1066, "nobody was timed out");
    drop(room);
}

/// Where session `from` (named `{prefix}{k}`) comes from, for counting shares: its `k / per`.
fn group(from: &str, prefix: char, per: usize) -> Option<usize> {
    from.strip_prefix(prefix)?
        .parse::<usize>()
        .ok()
        .map(|k| k / per)
}

/// For each turn that took messages of `groups` of them, the least and the most any group got.
fn shares_per_turn(d: &Driver, since: usize, prefix: char, per: usize) -> Vec<(usize, usize)> {
    let mut turns =
        std::collections::BTreeMap::<u64, std::collections::HashMap<usize, usize>>::new();
    for m in &d.log[since..] {
        if let Some(g) = group(&m.from, prefix, per) {
            *turns
                .entry(d.written_in[&m.seq])
                .or_default()
                .entry(g)
                .or_default() += 1;
        }
    }
    turns
        .values()
        .map(|by| (*by.values().min().unwrap(), *by.values().max().unwrap()))
        .collect()
}

/// 640 sessions from 10 addresses each send at their rate, 20 a second, in a room of 642: far
/// more than a turn's room for fan-out, turn after turn (one turn of the relay a step, as when
/// turns take real time). Meanwhile others have filled the relay's memory for waiting messages
/// to its bound. Each turn is shared by address, and alice's lines, at 4 a second, are each
/// taken in the turn they came in, or the next.
#[test]
fn many_senders_at_their_rate_share_the_turns_and_starve_nobody() {
    let mut d = Driver::new(Config::default());
    let mut pair = Pair::join(&mut d);
    d.watch = Some(HashSet::new());
    // 20 addresses of 4 sessions park 1000-byte texts ahead of a gap: 16 MiB, the bound.
    let parkers = crowd(&mut d, 80, "p", |k| {
        at(7, (k / 4) as u8, 1, 6000 + (k % 4) as u16)
    });
    let text = "y".repeat(urc::proto::message::MAX_TEXT_BYTES);
    for &(a, token) in &parkers {
        for chunk in (2..=256u64).collect::<Vec<_>>().chunks(1) {
            let send = Packet::send_one(token, 1, chunk[0], Uuid::new_v4(), &text);
            d.packet(a, &send);
        }
    }
    assert!(
        d.relay.parked_bytes() + 1128 > MAX_PARKED_BYTES,
        "the memory is full"
    );
    let senders = crowd(&mut d, 640, "s", |k| {
        at(2, (k / 64) as u8, 1, 7000 + (k % 64) as u16)
    });
    d.watch = pair.watch();
    d.one_turn = true;
    let mut csn = vec![0u64; senders.len()];
    let before = d.log.len();
    let mut check = None;
    for step in 0..40 {
        // Every 50 ms each sender sends its next message: 20 a second. (Its base says the
        // ones before are done with, as if acknowledged: those the full memory could not keep
        // waiting would otherwise come again, which this driver does not do.)
        let mut datagrams: Vec<(SocketAddr, Vec<u8>)> = (senders.iter().enumerate())
            .map(|(k, &(a, token))| {
                csn[k] += 1;
                let send =
                    Packet::send_one(token, csn[k], csn[k], Uuid::new_v4(), "flood flood flood");
                (a, send.encode())
            })
            .collect();
        let talks = step % 5 == 0;
        if talks {
            // alice's line arrives last of all.
            datagrams.push(pair.next());
        }
        let (since, turn) = (d.sent.len(), d.turns);
        d.turn(&datagrams);
        // One turn a step: the next comes with the next step's datagrams, and alice's line of
        // the step before must be in by then.
        d.now += ms(50);
        if let Some((since, turn)) = check.take() {
            pair.check_last(&d, since, turn);
        }
        if talks {
            check = Some((since, turn));
        }
    }
    // Every turn was full and shared: each address got about as much as the next.
    let shares = shares_per_turn(&d, before, 's', 64);
    assert!(shares.len() >= 40, "{} turns took messages", shares.len());
    for (least, most) in &shares[5..] {
        assert!(
            most - least <= 8,
            "shares in a turn from {least} to {most}: {shares:?}"
        );
    }
    assert!(d.relay.parked_bytes() <= MAX_PARKED_BYTES + 643 * 1200);
}

/// 300 sessions, each from a /64 of its own of one IPv6 /48, send faster than a turn's room
/// holds: the /48 is one share, not 300, and alice's lines are taken in their turn or the next.
#[test]
fn many_64s_of_one_48_are_one_share() {
    let mut d = Driver::new(Config::default());
    let mut pair = Pair::join(&mut d);
    d.watch = Some(HashSet::new());
    let senders = crowd(&mut d, 300, "v", |k| {
        let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, k as u16, 0, 0, 0, 1);
        SocketAddr::new(ip.into(), 7000)
    });
    d.watch = pair.watch();
    d.one_turn = true;
    let mut csn = vec![0u64; senders.len()];
    let mut check = None;
    for step in 0..30 {
        // Two messages each every 50 ms: within their burst for these 1.5 s.
        let mut datagrams: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        for (k, &(a, token)) in senders.iter().enumerate() {
            for _ in 0..2 {
                csn[k] += 1;
                let send =
                    Packet::send_one(token, 1, csn[k], Uuid::new_v4(), "from a /64 of a /48");
                datagrams.push((a, send.encode()));
            }
        }
        let talks = step % 5 == 0;
        if talks {
            datagrams.push(pair.next());
        }
        let (since, turn) = (d.sent.len(), d.turns);
        d.turn(&datagrams);
        // One turn a step: the next comes with the next step's datagrams, and alice's line of
        // the step before must be in by then.
        d.now += ms(50);
        if let Some((since, turn)) = check.take() {
            pair.check_last(&d, since, turn);
        }
        if talks {
            check = Some((since, turn));
        }
    }
    assert!(
        d.relay.parked_bytes() > 0,
        "the turns were full: messages waited"
    );
}

/// Sessions of many addresses park 255 messages each out of order (csn 1 never comes): the
/// relay keeps at most its bound in all, per address and per IPv6 /48, counted by the whole
/// record, and gives it all back when they leave.
#[test]
fn parked_messages_are_bounded_per_address_and_in_all_and_given_back() {
    let mut d = Driver::new(Config::default());
    d.watch = Some(HashSet::new());
    // 16 addresses of 34 sessions (each could park more than its address may), and 12 /64s
    // of one /48 with a session each parking long texts.
    let mut sessions = crowd(&mut d, 544, "p", |k| {
        at(3, (k / 34) as u8, 1, 8000 + (k % 34) as u16)
    });
    let v6 = crowd(&mut d, 12, "v", |k| {
        SocketAddr::new(
            std::net::Ipv6Addr::new(0x2001, 0xdb8, 9, k as u16, 0, 0, 0, 1).into(),
            8000,
        )
    });
    let park = |d: &mut Driver, (a, token): (SocketAddr, Token), text: &str| {
        let all: Vec<Sent> = (2..=256)
            .map(|csn| Sent {
                room: 0,
                csn,
                id: Uuid::new_v4(),
                text: text.into(),
            })
            .collect();
        let datagrams: Vec<(SocketAddr, Vec<u8>)> =
            (all.chunks(if text.len() > 100 { 1 } else { 38 }))
                .map(|c| {
                    (
                        a,
                        Packet::Send {
                            token,
                            base: 1,
                            messages: c.to_vec(),
                        }
                        .encode(),
                    )
                })
                .collect();
        d.turn(&datagrams);
    };
    let long = "z".repeat(urc::proto::message::MAX_TEXT_BYTES);
    for &s in &v6 {
        park(&mut d, s, &long);
    }
    let records = |d: &Driver, of: &[(SocketAddr, Token)]| -> usize {
        of.iter()
            .map(|(a, _)| d.relay.clients().get(a).map_or(0, |s| s.waiting()))
            .sum()
    };
    let network = records(&d, &v6) * parked_cost(&long);
    assert!(
        network <= MAX_PARKED_PER_NETWORK,
        "{network} bytes from one /48"
    );
    assert!(
        network + parked_cost(&long) > MAX_PARKED_PER_NETWORK,
        "the /48 filled its bound"
    );
    let text = "x";
    for &s in &sessions {
        park(&mut d, s, text);
    }
    let parked = d.relay.parked_bytes();
    assert!(parked <= MAX_PARKED_BYTES, "{parked}");
    assert!(
        parked + parked_cost(text) > MAX_PARKED_BYTES,
        "filled up to the bound: {parked}"
    );
    // Per address: 34 sessions could park 34 × 255 records; at most the address's bound.
    let first_ip = records(&d, &sessions[..34]) * parked_cost(text);
    assert!(
        first_ip <= MAX_PARKED_PER_IP,
        "{first_ip} bytes from one address"
    );
    assert!(
        first_ip + parked_cost(text) > MAX_PARKED_PER_IP,
        "the address filled its bound"
    );
    assert!(d.log.is_empty(), "nothing stored");
    sessions.extend(v6);
    for &(a, token) in &sessions {
        d.packet(
            a,
            &Packet::Leave {
                token,
                message: String::new(),
            },
        );
    }
    assert_eq!(d.relay.parked_bytes(), 0, "all given back");
}

#[test]
fn a_relay_that_stopped_times_nobody_out_for_the_time_it_did_not_run() {
    let mut d = Driver::new(Config::default());
    d.watch = Some(HashSet::new());
    let members = crowd(&mut d, 200, "m", |k| at(4, 0, (k % 200) as u8, 9000));
    let zed = at(4, 1, 1, 9000);
    d.member(zed, "zed");
    let ping_all = |d: &mut Driver| {
        let pings: Vec<(SocketAddr, Vec<u8>)> = (members.iter())
            .map(|&(a, token)| (a, Packet::Ping { token }.encode()))
            .collect();
        d.turn(&pings);
    };
    // zed goes silent; the others ping every 5 s for 25 s (the relay turning each second, as
    // its `poll_timeout` asks).
    for t in 1..=25 {
        d.advance(Duration::from_secs(1));
        if t % 5 == 0 {
            ping_all(&mut d);
        }
    }
    // The relay stops for 40 s: nothing runs, nothing is read; then its first turn.
    d.now += Duration::from_secs(40);
    d.advance(Duration::ZERO);
    assert_eq!(d.relay.stats().stalls, 1);
    assert_eq!(
        d.relay.stats().timed_out,
        0,
        "nobody timed out for the pause"
    );
    ping_all(&mut d);
    // zed had been silent 25 s before the pause: 5 s of running time later it is gone.
    for _ in 0..7 {
        d.advance(Duration::from_secs(1));
    }
    assert_eq!(d.relay.stats().timed_out, 1);
    assert!(d.relay.clients().get(&zed).is_none());
    assert_eq!(d.relay.clients().len(), 200);
}

/// The wall clock stepped ten years forward, then back: the message in between carries the
/// future, the ones after carry the right time again (they were frozen at the future).
#[test]
fn a_clock_stepped_forward_and_back_freezes_no_time() {
    let mut d = Driver::new(Config::default());
    let alice = at(5, 0, 1, 4000);
    let token = d.member(alice, "alice");
    let decade = 10 * 365 * 86_400_000;
    for (csn, offset) in [(1, 0), (2, decade), (3, 0), (4, -3_600_000)] {
        d.wall_offset = offset;
        d.advance(Duration::from_secs(1));
        d.packet(
            alice,
            &Packet::send_one(token, csn, csn, Uuid::new_v4(), "tick"),
        );
    }
    d.wall_offset = 0;
    let times: Vec<i64> = d.log.iter().map(|m| m.time.0).collect();
    // The clock as it was at each message, one a second, the last at `real`.
    let real = d.wall().0;
    let want = [
        real - 3000,
        real - 2000 + decade,
        real - 1000,
        real - 3_600_000,
    ];
    assert_eq!(times, want, "each time as the clock said, none frozen");
}

/// A client that asks again, with the same req, for a range its answer on the way will bring
/// (a retry while its pages are slow to come) queues nothing more: the relay sends the range
/// once.
#[test]
fn a_request_covered_by_an_answer_on_its_way_is_not_answered_twice() {
    let config = Config {
        bulk_rate: 20_000.0,
        ..Config::default()
    };
    let mut d = Driver::with_log(config, 2000);
    let bob = at(8, 0, 1, 4000);
    let token = d.member(bob, "bob");
    let ask = |from: u64, count: u16| Packet::History {
        room: 0,
        token,
        req: 5,
        from,
        count,
    };
    d.packet(bob, &ask(1, 1000));
    let waiting = |d: &Driver| {
        d.relay
            .clients()
            .get(&bob)
            .map_or(0, |s| s.answers_waiting())
    };
    assert_eq!(waiting(&d), 1, "the answer is slow: 20 KB a second");
    // Asked again, whole and in parts of what is still to come: nothing more waits.
    for (from, count) in [(1, 1000), (900, 50), (990, 11)] {
        d.advance(Duration::from_millis(300));
        d.packet(bob, &ask(from, count));
        assert_eq!(waiting(&d), 1, "from {from} count {count}");
    }
    // Another req, or what the answer does not bring, is an answer of its own.
    d.packet(
        bob,
        &Packet::History {
            room: 0,
            token,
            req: 6,
            from: 1,
            count: 5,
        },
    );
    d.packet(bob, &ask(1500, 10));
    assert_eq!(waiting(&d), 3);
    // Each message of the first answer came once (none was lost here, so none was asked for
    // again).
    for _ in 0..60 {
        d.advance(Duration::from_secs(1));
    }
    let mut seen = std::collections::HashMap::<u64, usize>::new();
    for p in d.sent_to(bob) {
        if let Packet::HistoryPage {
            req: 5,
            messages,
            first: 1,
            ..
        } = p
        {
            for m in messages {
                *seen.entry(m.seq).or_default() += 1;
            }
        }
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|&n| n == 1), "a message sent twice");
}

/// Members' numbers at their extremes (csns and bases at the top of their range, ranges of
/// history past the end): refused or handled, never an overflow, in debug builds too.
#[test]
fn numbers_at_their_extremes_are_handled() {
    let mut d = Driver::with_log(Config::default(), 10);
    let alice = at(6, 0, 1, 4000);
    let token = d.member(alice, "alice");
    let send = |csn: u64, base: u64| Packet::Send {
        token,
        base,
        messages: vec![Sent {
            room: 0,
            csn,
            id: Uuid::new_v4(),
            text: "top".into(),
        }],
    };
    // The decoder refuses what is past the top.
    for (csn, base) in [(u64::MAX, 1), (1, u64::MAX), (0, 1), (1, 0)] {
        let before = d.relay.stats().malformed;
        d.packet(alice, &send(csn, base));
        assert_eq!(
            d.relay.stats().malformed,
            before + 1,
            "csn {csn} base {base}"
        );
    }
    // At the top: the session skips to it, takes it, and expects one more, which it refuses.
    d.packet(alice, &send(MAX_CSN, MAX_CSN));
    assert_eq!(d.log.last().map(|m| m.text.as_str()), Some("top"));
    d.packet(alice, &send(MAX_CSN, MAX_CSN));
    assert_eq!(d.log.len(), 11, "a retransmission, not a second message");
    assert_eq!(d.relay.clients().get(&alice).map(|s| s.waiting()), Some(0));
    // History asked from the top, and from just past the end, with every count: each answer
    // is a range of what the log holds, at most 1000, or empty.
    for from in [u64::MAX, u64::MAX - 1, 11, 12, 0, 1] {
        for count in [0, 1, 1000, u16::MAX] {
            let since = d.sent.len();
            d.packet(
                alice,
                &Packet::History {
                    room: 0,
                    token,
                    req: 1,
                    from,
                    count,
                },
            );
            d.advance(Duration::from_millis(200));
            let ranges: Vec<(u64, u64)> = (d.sent[since..].iter())
                .filter_map(|(to, p)| match p {
                    Packet::HistoryPage {
                        req: 1,
                        first,
                        last,
                        ..
                    } if *to == alice => Some((*first, *last)),
                    _ => None,
                })
                .collect();
            assert!(!ranges.is_empty(), "from {from} count {count}: no answer");
            for (first, last) in ranges {
                let empty = (first, last) == (0, 0);
                assert!(
                    empty || (1 <= first && first <= last && last <= 11 && last - first < 1000)
                );
            }
        }
    }
    d.packet(
        alice,
        &Packet::Leave {
            token,
            message: String::new(),
        },
    );
    assert!(d.relay.clients().is_empty());
}

/// 40 members of a room of 1000 (`big`), from one address, send it the longest lines at their
/// rate, far more fan-out than a turn has room for, while alice and bob chat in the lobby, a
/// room none of the crowd is in: alice's lines are taken, acknowledged and fanned out in their
/// turn all along (the flood is one address's share), and the big room's lines go on, in
/// order, as the turns' room allows. (Many flooding addresses are as many shares: alice's
/// line waits a round of them, see docs/security.md.)
#[test]
fn a_flood_in_one_room_delays_no_other_room() {
    let mut d = Driver::new(Config::default());
    let mut pair = Pair::join(&mut d);
    d.watch = Some(HashSet::new());
    // The first 40 from one address (the per-IP limit is 64), the others each from its own.
    let crowd = crowd(&mut d, 1000, "c", |k| match k {
        0..40 => at(9, 9, 9, 7000 + k as u16),
        _ => at(3, (k / 200) as u8, (k % 200) as u8, 7000),
    });
    for &(a, token) in &crowd {
        let enter = Packet::Enter {
            token,
            room: "big".into(),
            history: 0,
        };
        d.packet(a, &enter);
        let part = Packet::Part {
            token,
            room: 0,
            message: String::new(),
        };
        d.packet(a, &part);
    }
    assert_eq!(
        d.relay.members_in("lobby"),
        2,
        "only alice and bob in the lobby"
    );
    assert_eq!(d.relay.members_in("big"), 1000);
    let senders = &crowd[..40];
    let text = "z".repeat(urc::proto::message::MAX_TEXT_BYTES - 16);
    d.watch = pair.watch();
    d.one_turn = true;
    let mut csn = vec![0u64; senders.len()];
    let mut check = None;
    for step in 0..40 {
        let mut datagrams: Vec<(SocketAddr, Vec<u8>)> = (senders.iter().enumerate())
            .map(|(k, &(a, token))| {
                csn[k] += 1;
                let send = Packet::Send {
                    token,
                    base: csn[k],
                    messages: vec![Sent {
                        csn: csn[k],
                        room: 1,
                        id: Uuid::new_v4(),
                        text: format!("{k:03}/{:04} {text}", csn[k]),
                    }],
                };
                (a, send.encode())
            })
            .collect();
        if step % 4 == 0 {
            // alice's line arrives last of all.
            datagrams.push(pair.next());
        }
        let (since, turn) = (d.sent.len(), d.turns);
        d.turn(&datagrams);
        d.now += ms(50);
        if let Some((since, turn)) = check.take() {
            pair.check_last(&d, since, turn);
        }
        if step % 4 == 0 {
            check = Some((since, turn));
        }
    }
    let big = &d.rooms["big"];
    assert!(
        big.len() >= 40,
        "the big room went on: {} stored",
        big.len()
    );
    assert!(
        big.len() < 40 * 40,
        "more fan-out than the turns hold, so some wait: {} stored",
        big.len()
    );
    for (k, m) in big.iter().enumerate() {
        assert_eq!(m.seq, k as u64 + 1);
    }
}
