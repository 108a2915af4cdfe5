//! The rooms' logs' tests: looking at a few logs a turn goes round them all; checkpoints paced by the logs they flush.

use super::*;

/// A look at a few logs a turn goes round them all: a log deleted under the relay is
/// found within one round, whichever it is.
#[test]
fn looks_at_a_few_logs_go_round_them_all() {
    let data = tempfile::tempdir().unwrap();
    for room in ["a", "b", "c", "d"] {
        layout::make_room_dir(data.path(), room).unwrap();
    }
    let (mut logs, _) = Logs::open(data.path(), 100).unwrap();
    let n = logs.len();
    assert_eq!(n, 5, "the four and the lobby");
    for victim in ["a", "c", "lobby"] {
        let path = logs.path(victim).unwrap().to_owned();
        let moved = path.with_extension("moved");
        std::fs::rename(&path, &moved).unwrap();
        let mut looks = 0;
        while logs.stores[victim].lost().is_none() {
            assert!(looks < n, "{victim}: not found in a round of {n} looks");
            logs.look(1);
            looks += 1;
        }
        std::fs::rename(&moved, &path).unwrap();
        // Back within a round too (two at a time now).
        let mut looks = 0;
        while logs.stores[victim].lost().is_some() {
            assert!(looks < n.div_ceil(2), "{victim}: not back in a round");
            logs.look(2);
            looks += 1;
        }
    }
    // More than there are: each once.
    logs.look(3 * n);
    assert!(logs.stores.values().all(|s| s.lost().is_none()));
}

/// With many logs to flush, checkpoints come further apart (a second for every
/// `LOGS_PER_SECOND` of them, at most `MAX_PACE`); with few, every second.
#[test]
fn checkpoints_of_many_logs_come_further_apart() {
    use std::time::{Duration, Instant};
    let data = tempfile::tempdir().unwrap();
    let rooms: Vec<String> = (0..600).map(|k| format!("r{k}")).collect();
    for room in &rooms {
        layout::make_room_dir(data.path(), room).unwrap();
    }
    let (mut logs, _) = Logs::open(data.path(), 100).unwrap();
    let relay = Relay::new(crate::relay::Config::default(), Vec::new());
    let t0 = Instant::now();
    // Rooms written since the last checkpoint, their records in the journal.
    let dirty_all = |logs: &mut Logs| {
        logs.journal.append_entries(&journal_entry()).unwrap();
        logs.dirty.extend(rooms.iter().cloned());
    };
    dirty_all(&mut logs);
    // The journal's first use makes its next file ahead, on the checkpoint's thread.
    logs.end_checkpoint(true);
    logs.watch(&relay, t0, false);
    assert!(logs.dirty.is_empty(), "the first checkpoint starts at once");
    logs.end_checkpoint(true);
    dirty_all(&mut logs);
    let pace = checkpoint::pace(rooms.len());
    assert_eq!(
        pace,
        Duration::from_millis(2400),
        "600 logs at 250 a second"
    );
    logs.watch(&relay, t0 + Duration::from_secs(1), false);
    assert_eq!(
        logs.dirty.len(),
        rooms.len(),
        "600 logs: not due after a second"
    );
    logs.watch(&relay, t0 + pace, false);
    assert!(logs.dirty.is_empty(), "due after {pace:?}");
    logs.end_checkpoint(true);
    // Few logs: every second, and never more than MAX_PACE apart however many.
    dirty_all(&mut logs);
    logs.dirty.retain(|r| r == "r1");
    logs.watch(&relay, t0 + pace + Duration::from_secs(1), false);
    assert!(logs.dirty.is_empty(), "one log: due a second later");
    logs.end_checkpoint(true);
    assert_eq!(checkpoint::pace(0), Duration::from_secs(1));
    assert_eq!(checkpoint::pace(1_000_000), Duration::from_secs(10));
    // A journal that holds JOURNAL_DUE is checkpointed at once, however many logs wait.
    let at = t0 + pace + Duration::from_secs(1);
    dirty_all(&mut logs);
    let line = journal_entry();
    let mut big = Vec::with_capacity(checkpoint::JOURNAL_DUE as usize + line.len());
    while (big.len() as u64) < checkpoint::JOURNAL_DUE {
        big.extend_from_slice(&line);
    }
    logs.journal.append_entries(&big).unwrap();
    logs.watch(&relay, at + Duration::from_secs(1), false);
    assert!(logs.dirty.is_empty(), "a full journal: due at once");
    logs.end_checkpoint(true);
}

/// One record of the room `r0`, as the journal holds it.
fn journal_entry() -> Vec<u8> {
    let message = Message {
        seq: 1,
        id: uuid::Uuid::new_v4(),
        from: "ann".into(),
        text: "hi".into(),
        time: crate::proto::message::Millis(1_795_593_600_000),
    };
    let (mut line, mut entry) = (Vec::new(), Vec::new());
    write_record(&mut line, &message).unwrap();
    journal::add_entry(&mut entry, "r0", &line);
    entry
}
