//! The log's unit tests: reopening, torn and damaged lines, full and read-only disks,
//! rotation, and reads checked against a scan of the whole log.

use std::fs::File;

use super::read::SCAN;
use super::*;
use crate::proto::message::Millis;
use uuid::Uuid;

fn msg(seq: u64) -> Message {
    Message {
        seq,
        id: Uuid::new_v4(),
        from: "alice".into(),
        text: format!("你好 {seq}"),
        time: Millis(1_795_593_600_000 + seq as i64),
    }
}

#[test]
fn appends_reopens_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    assert!(opened.tail.is_empty());
    let all: Vec<Message> = (1..=25).map(msg).collect();
    opened.store.append(&all[..5]).unwrap();
    opened.store.append(&all[5..]).unwrap();
    assert_eq!(opened.store.read(3, 7).unwrap(), all[2..7]);
    drop(opened);
    let again = Store::open(dir.path(), 10, 0).unwrap();
    assert_eq!(again.tail, all[15..]);
    assert_eq!(again.torn, None);
    let text = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
    assert_eq!(text.lines().count(), 25);
}

#[test]
fn a_torn_last_line_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    opened.store.append(&[msg(1), msg(2)]).unwrap();
    drop(opened);
    let path = dir.path().join(LOG_FILE);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"seq":3,"id":"#).unwrap();
    drop(f);
    let mut again = Store::open(dir.path(), 10, 0).unwrap();
    assert_eq!(again.torn, Some(14));
    assert_eq!(again.tail.len(), 2);
    again.store.append(&[msg(3)]).unwrap();
    drop(again);
    let third = Store::open(dir.path(), 10, 0).unwrap();
    assert_eq!(
        third.tail.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn a_bad_line_in_the_middle_is_refused_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    opened.store.append(&[msg(1), msg(2), msg(3)]).unwrap();
    drop(opened);
    let path = dir.path().join(LOG_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "not json";
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = Store::open(dir.path(), 10, 0).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("messages.jsonl:2: invalid record"));
}

#[test]
fn a_sequence_gap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    opened.store.append(&[msg(1), msg(3)]).unwrap();
    drop(opened);
    let err = Store::open(dir.path(), 10, 0).unwrap_err();
    assert!(
        err.to_string().contains("seq 3 where 2 was expected"),
        "{err}"
    );
}

/// A file that fails like a full disk while `full` is set: it writes part of what it is
/// given, then reports ENOSPC.
#[derive(Debug)]
struct FullDisk {
    file: File,
    full: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LogFile for FullDisk {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            self.file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(io::Error::from_raw_os_error(28));
        }
        self.file.write_all(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

#[test]
fn a_full_disk_fails_the_batch_leaves_no_half_record_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    opened.store.append(&[msg(1)]).unwrap();
    let full = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let path = dir.path().join(LOG_FILE);
    let file = OpenOptions::new().append(true).open(&path).unwrap();
    opened.store.replace_file(Box::new(FullDisk {
        file,
        full: full.clone(),
    }));
    let err = opened.store.append(&[msg(2), msg(3)]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28));
    // Cut back to the last whole record: nothing half-written stays in the log.
    assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
    full.store(false, std::sync::atomic::Ordering::SeqCst);
    opened.store.append(&[msg(2), msg(3)]).unwrap();
    drop(opened);
    let again = Store::open(dir.path(), 10, 0).unwrap();
    assert_eq!(
        again.tail.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(again.torn, None);
}

/// A file on a file system that turned read-only: every write fails, nothing is written.
#[derive(Debug)]
struct ReadOnly;

impl LogFile for ReadOnly {
    fn append(&mut self, _: &[u8]) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(30))
    }
    fn sync(&mut self) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(30))
    }
    fn truncate(&mut self, _: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(30))
    }
}

#[test]
fn a_read_only_file_system_fails_every_append_and_keeps_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    let first = msg(1);
    opened.store.append(std::slice::from_ref(&first)).unwrap();
    opened.store.replace_file(Box::new(ReadOnly));
    for _ in 0..3 {
        let err = opened.store.append(&[msg(2)]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(30));
    }
    assert_eq!(opened.store.read(1, 5).unwrap(), vec![first]);
    drop(opened);
    let again = Store::open(dir.path(), 10, 0).unwrap();
    assert_eq!(again.tail.len(), 1);
}

#[test]
fn a_rotated_log_goes_on_from_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    let all: Vec<Message> = (1..=5).map(msg).collect();
    opened.store.append(&all).unwrap();
    drop(opened);
    // Rotated as docs/operations.md says: archived, the new log starts with the last line.
    let path = dir.path().join(LOG_FILE);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{}\n", text.lines().last().unwrap())).unwrap();
    let mut again = Store::open(dir.path(), 10, 0).unwrap();
    assert_eq!(again.tail, all[4..]);
    let sixth = msg(6);
    again.store.append(std::slice::from_ref(&sixth)).unwrap();
    assert_eq!(again.store.read(1, 6).unwrap(), [all[4].clone(), sixth]);
    assert_eq!(again.store.read(1, 3).unwrap(), vec![]);
    drop(again);
    let third = Store::open(dir.path(), 10, 0).unwrap();
    assert_eq!(third.tail.iter().map(|m| m.seq).collect::<Vec<_>>(), [5, 6]);
}

/// A log of `n` records from `start`, of lengths that vary a lot (empty texts, escapes,
/// wide characters, a few long ones), written as `Store::append` writes them.
fn varied_log(dir: &Path, start: u64, n: u64) -> (Store, Vec<Message>) {
    let all: Vec<Message> = (start..start + n)
        .map(|seq| {
            let mut m = msg(seq);
            m.text = match seq % 7 {
                0 => String::new(),
                1 => "\"quoted\" \\ and\ttab".repeat((seq % 5) as usize),
                2 => "你好🙂".repeat((seq * 37 % 90) as usize),
                3 => "x".repeat(900),
                _ => format!("hello world message {seq:06}"),
            };
            m
        })
        .collect();
    if let Some(first) = all.first() {
        // Opened on a log that begins with `first`, as after a rotation.
        let mut buf = Vec::new();
        write_record(&mut buf, first).unwrap();
        fs::write(dir.join(LOG_FILE), buf).unwrap();
    }
    let mut opened = Store::open(dir, 10, 0).unwrap();
    if all.len() > 1 {
        opened.store.append(&all[1..]).unwrap();
    }
    (opened.store, all)
}

/// What a read must return, by scanning everything.
fn oracle(all: &[Message], first: u64, last: u64) -> Vec<Message> {
    all.iter()
        .filter(|m| m.seq >= first && m.seq <= last)
        .take(MAX_READ)
        .cloned()
        .collect()
}

#[test]
fn reads_find_every_range_of_small_logs_like_a_scan() {
    for start in [1, 5] {
        for n in 0..=12 {
            let dir = tempfile::tempdir().unwrap();
            let (store, all) = varied_log(dir.path(), start, n);
            let end = start + n + 2;
            for first in 0..=end {
                for last in first.saturating_sub(1)..=end {
                    for scan in [1, 40, SCAN] {
                        assert_eq!(
                            store.read_scanning(first, last, scan).unwrap(),
                            oracle(&all, first, last),
                            "start {start}, {n} records, {first}..={last}, scan {scan}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_read_lands_on_its_range_in_a_long_log_and_stops_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (store, all) = varied_log(dir.path(), 1, 2500);
    for (first, last) in [(1, 20), (1250, 1269), (2481, 2500), (2490, 3000), (7, 7)] {
        assert_eq!(store.read(first, last).unwrap(), oracle(&all, first, last));
    }
    let most = store.read(100, 5000).unwrap();
    assert_eq!(most.len(), MAX_READ);
    assert_eq!((most[0].seq, most[MAX_READ - 1].seq), (100, 1099));
    assert!(store.read(2501, 2600).unwrap().is_empty());
    assert!(store.read(20, 10).unwrap().is_empty());
}

#[test]
fn a_read_sees_records_appended_after_open_and_nothing_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, mut all) = varied_log(dir.path(), 1, 300);
    let more: Vec<Message> = (301..=340).map(msg).collect();
    store.append(&more).unwrap();
    all.extend(more);
    // Half a record that the store does not count (as a failed write that could not be
    // cut back would leave): reads never reach it.
    let mut f = OpenOptions::new().append(true).open(store.path()).unwrap();
    f.write_all(br#"{"seq":341,"id":"#).unwrap();
    for scan in [1, SCAN] {
        assert_eq!(
            store.read_scanning(330, 400, scan).unwrap(),
            oracle(&all, 330, 400)
        );
        assert_eq!(store.read_scanning(341, 400, scan).unwrap(), vec![]);
    }
}

#[test]
fn a_damaged_record_on_the_way_is_an_error_not_a_wrong_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = varied_log(dir.path(), 1, 50);
    let text = fs::read_to_string(store.path()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Numbered out of turn, same length: a read through it must not go on silently.
    lines[29] = lines[29].replacen("\"seq\":30,", "\"seq\":31,", 1);
    fs::write(store.path(), lines.join("\n") + "\n").unwrap();
    let err = store.read_scanning(25, 35, 1).unwrap_err();
    assert!(err.to_string().contains("where 30 was expected"), "{err}");
}

proptest::proptest! {
    #[test]
    fn reads_agree_with_a_scan(
        start in 1u64..1000,
        n in 0u64..400,
        first in 0u64..1500,
        count in 0u64..1200,
        scan in 1u64..3000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (store, all) = varied_log(dir.path(), start, n);
        let last = first + count;
        proptest::prop_assert_eq!(
            store.read_scanning(first, last, scan).unwrap(),
            oracle(&all, first, last)
        );
    }
}

#[test]
fn a_log_that_ends_before_the_last_seq_stored_is_refused_until_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    let all: Vec<Message> = (1..=5).map(msg).collect();
    opened.store.append(&all).unwrap();
    assert!(opened.store.mark_later(5));
    assert_eq!(opened.store.marked(), 5);
    drop(opened);
    // Deleted, or replaced by an older copy: refused, with what to do.
    for kept in [0, 3] {
        let text = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        let older: String = text.lines().take(kept).map(|l| format!("{l}\n")).collect();
        fs::write(dir.path().join(LOG_FILE), &older).unwrap();
        let err = Store::open(dir.path(), 10, 5).unwrap_err();
        assert!(
            matches!(err, OpenError::Behind { last, mark: 5, .. } if last == kept as u64),
            "{err:?}"
        );
        let said = err.to_string();
        assert!(
            said.contains(&format!(
                "ends at seq {kept}, but this relay stored up to seq 5"
            )),
            "{said}"
        );
        assert!(said.contains("--repair-log"), "{said}");
        // --repair-log: placeholders up to the mark, and the room goes on after it.
        let filled = crate::serve::repair::fill_to_mark(dir.path(), 5).unwrap();
        let first = if kept == 0 { 5 } else { kept as u64 + 1 };
        assert_eq!(filled, Some((first, 5)));
        let again = Store::open(dir.path(), 10, 5).unwrap();
        assert_eq!(again.tail.last().map(|m| m.seq), Some(5));
        assert!(
            again
                .tail
                .iter()
                .filter(|m| m.seq >= first)
                .all(|m| m.id.is_nil())
        );
        drop(again);
        // Put the whole log back for the next round.
        fs::write(dir.path().join(LOG_FILE), &text).unwrap();
    }
}

#[test]
fn a_log_deleted_moved_or_replaced_under_the_relay_stops_appends_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    let mut opened = Store::open(dir.path(), 10, 0).unwrap();
    let store = &mut opened.store;
    store.append(&[msg(1), msg(2)]).unwrap();
    assert!(store.check().is_none(), "nothing happened");

    // Moved away: noticed, appends refused, reads still served from the relay's own file.
    let away = dir.path().join("away.jsonl");
    fs::rename(&path, &away).unwrap();
    let Some(LogEvent::Lost { why, rescued }) = store.check() else {
        panic!("not noticed")
    };
    assert_eq!((why.as_str(), rescued.is_none()), ("was moved away", true));
    assert!(store.check().is_none(), "said once");
    let err = store.append(&[msg(3)]).unwrap_err();
    assert!(
        err.to_string()
            .contains("was moved away while the relay ran"),
        "{err}"
    );
    assert_eq!(store.read(1, 2).unwrap().len(), 2);
    // Moved back: acknowledging goes on.
    fs::rename(&away, &path).unwrap();
    assert!(matches!(store.check(), Some(LogEvent::Back)));
    store.append(&[msg(3)]).unwrap();

    // Replaced by another file.
    fs::rename(&path, &away).unwrap();
    fs::write(&path, "").unwrap();
    let Some(LogEvent::Lost { why, .. }) = store.check() else {
        panic!("not noticed")
    };
    assert_eq!(why, "was replaced by another file");
    assert!(store.append(&[msg(4)]).is_err());
    fs::rename(&away, &path).unwrap();
    assert!(matches!(store.check(), Some(LogEvent::Back)));

    // Deleted: its records are rescued from the relay's own file.
    fs::remove_file(&path).unwrap();
    let Some(LogEvent::Lost { why, rescued }) = store.check() else {
        panic!("not noticed")
    };
    assert_eq!(why, "was deleted");
    let rescued = rescued.expect("rescued").unwrap();
    let text = fs::read_to_string(&rescued).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<Message>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(store.append(&[msg(4)]).is_err());
    // What was stored before stays marked while the log is lost (its room's mark is written
    // with it; tests/faults.rs checks that end to end), so a start on no log refuses it.
    assert!(store.mark_later(3));
    assert_eq!(store.marked(), 3);
    drop(opened);
    assert!(matches!(
        Store::open(dir.path(), 10, 3),
        Err(OpenError::Behind {
            last: 0,
            mark: 3,
            ..
        })
    ));
}
