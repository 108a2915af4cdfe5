//! The journal's tests: what a crash leaves is put back, files made ahead, checkpoints that fail.

use super::*;
use crate::proto::message::Millis;
use crate::serve::store::LOG_FILE;
use std::fs::OpenOptions;
use uuid::Uuid;

fn message(seq: u64, text: &str) -> Message {
    Message {
        seq,
        id: Uuid::new_v4(),
        from: "ann".into(),
        text: text.into(),
        time: Millis(1_795_593_600_000 + seq as i64),
    }
}

fn log(data: &Path, room: &str) -> Vec<(u64, String)> {
    let text = fs::read_to_string(layout::room_dir(data, room).join(LOG_FILE)).unwrap();
    (text.lines())
        .map(|l| serde_json::from_str::<Message>(l).unwrap())
        .map(|m| (m.seq, m.text))
        .collect()
}

/// A crash after the journal's flush and before the rooms' logs were flushed: one log
/// ends in a torn copy of its last record, another lacks its last two, a third room's log
/// was never made. At the next start every record the journal holds is in its room's log,
/// once, and the journal is gone.
#[test]
fn what_a_crash_left_out_of_the_logs_is_put_back_from_the_journal() {
    let data = tempfile::tempdir().unwrap();
    let (mut j, put_back) = Journal::open(data.path()).unwrap();
    assert!(put_back.is_empty());
    let ops: Vec<Message> = (1..=3).map(|k| message(k, &format!("ops {k}"))).collect();
    let hr: Vec<Message> = (1..=4).map(|k| message(k, &format!("hr {k}"))).collect();
    let new = message(1, "first words");
    // ops 1 and hr 1..2 reached their logs, flushed, in an earlier checkpoint.
    for (room, ms) in [("ops", &ops[..1]), ("hr", &hr[..2])] {
        let dir = layout::room_dir(data.path(), room);
        fs::create_dir_all(&dir).unwrap();
        let mut buf = Vec::new();
        for m in ms {
            write_record(&mut buf, m).unwrap();
        }
        fs::write(dir.join(LOG_FILE), buf).unwrap();
    }
    let records: Vec<(&str, &Message)> = (ops[1..].iter().map(|m| ("ops", m)))
        .chain(hr[2..].iter().map(|m| ("hr", m)))
        .chain([("new", &new)])
        .collect();
    j.append(records).unwrap();
    // The next file made ahead: done before the crash below, not racing the next start.
    assert!(j.poll(true).unwrap().is_ok());
    // ops's log got ops 2 whole and a torn half of ops 3; hr's nothing more.
    let ops_log = layout::room_dir(data.path(), "ops").join(LOG_FILE);
    let mut tail = Vec::new();
    write_record(&mut tail, &ops[1]).unwrap();
    write_record(&mut tail, &ops[2]).unwrap();
    tail.truncate(tail.len() - 20);
    let mut f = OpenOptions::new().append(true).open(&ops_log).unwrap();
    f.write_all(&tail).unwrap();
    drop((f, j));
    let (_j, mut put_back) = Journal::open(data.path()).unwrap();
    put_back.sort();
    assert_eq!(
        put_back,
        [
            ("hr".to_owned(), 2),
            ("new".to_owned(), 1),
            // ops 2 was whole in its log already: ops 3 alone is put back.
            ("ops".to_owned(), 1)
        ]
    );
    let texts = |n: usize, what: &str| -> Vec<(u64, String)> {
        (1..=n as u64).map(|k| (k, format!("{what} {k}"))).collect()
    };
    assert_eq!(log(data.path(), "ops"), texts(3, "ops"));
    assert_eq!(log(data.path(), "hr"), texts(4, "hr"));
    assert_eq!(log(data.path(), "new"), [(1, "first words".to_owned())]);
    let files = numbered(&data.path().join(JOURNAL_DIR)).unwrap();
    assert_eq!(files.len(), 1, "only the fresh journal: {files:?}");
    // A second start finds nothing to put back, and the logs are as they were.
    let (_j, put_back) = Journal::open(data.path()).unwrap();
    assert!(put_back.is_empty());
    assert_eq!(log(data.path(), "ops"), texts(3, "ops"));
}

/// A record flushed in the log itself after those of the journal (a turn of one room
/// flushes its log alone) is kept: the journal's records go only after the log's last
/// whole one.
#[test]
fn records_flushed_in_the_log_after_the_journals_are_kept() {
    let data = tempfile::tempdir().unwrap();
    let dir = layout::room_dir(data.path(), "ops");
    fs::create_dir_all(&dir).unwrap();
    let all: Vec<Message> = (1..=4).map(|k| message(k, &format!("ops {k}"))).collect();
    let mut buf = Vec::new();
    for m in &all[..3] {
        write_record(&mut buf, m).unwrap();
    }
    fs::write(dir.join(LOG_FILE), &buf).unwrap();
    // The journal has 2 (a turn of two rooms) and 4 (another), the log 1 to 3.
    assert_eq!(recover(&dir, &[all[1].clone(), all[3].clone()]).unwrap(), 1);
    let texts: Vec<u64> = log(data.path(), "ops")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(texts, [1, 2, 3, 4]);
}

/// The journal's first use makes the next file ahead (zeros, flushed); the checkpoint
/// writes into it from its start and makes the one after it; a crash then leaves records
/// followed by zeros, and a start reads the records and stops at the zeros.
#[test]
fn files_made_ahead_are_written_from_their_start_and_read_up_to_their_zeros() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join(JOURNAL_DIR);
    let size = |n: u64| fs::metadata(dir.join(format!("{n}.jsonl"))).map(|m| m.len());
    let (mut j, _) = Journal::open(data.path()).unwrap();
    let first = j.number;
    assert_eq!(
        size(first + 1).ok(),
        None,
        "nothing is made before the journal is used"
    );
    let one = message(1, "one");
    j.append([("ops", &one)]).unwrap();
    assert!(j.poll(true).unwrap().is_ok());
    assert_eq!(j.prepared, Some(first + 1));
    assert_eq!(size(first + 1).unwrap(), PREPARED_FIRST);
    j.checkpoint(Vec::new(), Vec::new(), None).unwrap();
    assert!(j.poll(true).unwrap().is_ok());
    assert_eq!(j.number, first + 1);
    assert_eq!(size(first).ok(), None, "the file it covered is removed");
    // The one after: twice what the last held, at least the least.
    assert_eq!(j.prepared, Some(first + 2));
    assert_eq!(size(first + 2).unwrap(), PREPARED_MIN);
    let (two, three) = (message(2, "two"), message(3, "three"));
    j.append([("ops", &two), ("hr", &three)]).unwrap();
    assert_eq!(
        size(first + 1).unwrap(),
        PREPARED_FIRST,
        "written over its zeros"
    );
    // A crash: the file holds the records, then zeros.
    drop(j);
    let mut by_room = BTreeMap::new();
    read_journal(&dir.join(format!("{}.jsonl", first + 1)), &mut by_room).unwrap();
    let seqs = |room: &str| by_room[room].iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!((seqs("ops"), seqs("hr")), (vec![2], vec![3]));
    let (_j, mut put_back) = Journal::open(data.path()).unwrap();
    put_back.sort();
    assert_eq!(put_back, [("hr".to_owned(), 1), ("ops".to_owned(), 1)]);
    assert_eq!(log(data.path(), "ops"), [(2, "two".to_owned())]);
}

/// A checkpoint that failed keeps the journal files it covered till the next start, even
/// once a later checkpoint succeeds (that one's own files go): a failed flush may have left
/// a log's pages marked clean and unwritten, the journal their only copy on disk.
#[test]
fn a_failed_checkpoints_journal_is_kept_till_the_next_start() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join(JOURNAL_DIR);
    let (mut j, _) = Journal::open(data.path()).unwrap();
    let first = j.number;
    j.append([("ops", &message(1, "one"))]).unwrap();
    assert!(j.poll(true).unwrap().is_ok());
    // A directory to flush that is not there: the checkpoint fails.
    let gone = data.path().join("rooms/gone");
    j.checkpoint(vec![gone], Vec::new(), None).unwrap();
    assert!(j.poll(true).unwrap().is_err());
    j.append([("ops", &message(2, "two"))]).unwrap();
    j.checkpoint(Vec::new(), Vec::new(), None).unwrap();
    assert!(j.poll(true).unwrap().is_ok());
    let left: Vec<u64> = numbered(&dir).unwrap().iter().map(|(n, _)| *n).collect();
    assert!(
        left.contains(&first),
        "the failed one's file is kept: {left:?}"
    );
    assert!(
        !left.contains(&(first + 1)),
        "the later one's goes: {left:?}"
    );
    drop(j);
    let (_j, put_back) = Journal::open(data.path()).unwrap();
    assert_eq!(put_back, [("ops".to_owned(), 1)]);
    assert_eq!(log(data.path(), "ops"), [(1, "one".to_owned())]);
}

/// A checkpoint moves the journal on: the files before it are removed once the logs are
/// flushed, and a torn last line of the journal is not taken for a record.
#[test]
fn a_checkpoint_removes_the_journal_it_covers_and_a_torn_line_is_no_record() {
    let data = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(data.path()).unwrap();
    let m = message(1, "one");
    j.append([("ops", &m)]).unwrap();
    let dir = data.path().join(JOURNAL_DIR);
    // The file written, and the next one its first use made ahead.
    assert!(j.poll(true).unwrap().is_ok());
    assert_eq!(numbered(&dir).unwrap().len(), 2);
    j.checkpoint(Vec::new(), Vec::new(), None).unwrap();
    assert!(j.checkpointing());
    assert!(j.poll(true).unwrap().is_ok());
    let left: Vec<u64> = numbered(&dir).unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        left,
        [j.number, j.number + 1],
        "the new journal and the next"
    );
    // An empty journal starts no checkpoint.
    j.checkpoint(Vec::new(), Vec::new(), None).unwrap();
    assert!(!j.checkpointing());
    let m2 = message(2, "two");
    j.append([("ops", &m2)]).unwrap();
    let path = dir.join(format!("{}.jsonl", j.number));
    // A torn record right after it (written where the next would go, before the zeros).
    j.file.write_all(b"{\"room\":\"ops\",\"seq\":3").unwrap();
    drop(j);
    let mut by_room = BTreeMap::new();
    read_journal(&path, &mut by_room).unwrap();
    assert_eq!(
        by_room["ops"].iter().map(|m| m.seq).collect::<Vec<_>>(),
        [2]
    );
}
