//! The rooms' logs' tests: looking at a few logs a turn goes round them all.

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
