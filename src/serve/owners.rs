//! Who owns each name, on disk: `<data>/names.jsonl`, a journal of bindings appended and synced in the turn they are made, made anew at start when it holds more than its owners; the older `names.json` taken over; and `urc serve --release-name`.
//!
//! A line binds a name to a key (`{"name":"alice","key":"…"}`) or frees it (`"key":null`);
//! later lines win. Appending costs a line and a sync whatever the number of names (writing
//! 10,000 names whole took 6 ms, every turn that bound one). At start the journal is read,
//! and written again whole (one line an owner, in the order they were bound) when it holds
//! lines that no longer count, a last line without its newline (the relay died while
//! appending), or comes from `names.json`. An append that fails is cut back off, so a torn
//! line never ends up in the middle.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::proto::name::name_key;
use crate::relay::owners::{Binding, Owners};

/// The journal in the data directory `data`.
pub fn path(data: &Path) -> PathBuf {
    data.join("names.jsonl")
}

/// Where relays before the journal kept the owners, whole: read once, then removed.
fn older_path(data: &Path) -> PathBuf {
    data.join("names.json")
}

/// The owners kept in `data` (none when nothing is kept yet); the journal is made anew when
/// it holds more than its owners.
///
/// # Errors
/// A one-line explanation naming the file when it cannot be read, is not what the relay
/// writes, or cannot be made anew.
pub fn load(data: &Path) -> Result<Owners, String> {
    let file = path(data);
    let (lines, anew) = match read_if_there(&file)? {
        Some(bytes) => read_journal(&file, &bytes)?,
        None => match read_older(data)? {
            Some(lines) => (lines, true),
            None => return Ok(Owners::default()),
        },
    };
    let count = lines.len();
    let (owners, unkept) = Owners::from_bindings(lines);
    if !unkept.unreadable.is_empty() {
        tracing::warn!(names = ?unkept.unreadable, file = %file.display(), "names whose owner's key does not read are free");
    }
    if !unkept.look_alikes.is_empty() {
        tracing::warn!(names = ?unkept.look_alikes, file = %file.display(), "names that now look like a name bound before them (the Unicode data changed) are not theirs: the first keeps its owner");
    }
    if anew || count != owners.len() {
        rewrite(data, &owners)
            .map_err(|e| format!("cannot write the names' owners {}: {e}", file.display()))?;
    }
    // The journal holds everything now: an older file goes (also one left by a start that
    // stopped before it could remove it).
    remove_older(data, &file)?;
    Ok(owners)
}

/// The bytes of the names' owners `file`, none when it does not exist.
fn read_if_there(file: &Path) -> Result<Option<Vec<u8>>, String> {
    match fs::read(file) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot read the names' owners {}: {e}",
            file.display()
        )),
    }
}

/// Removes `names.json`, if it is there: the journal `file` holds what it held.
fn remove_older(data: &Path, file: &Path) -> Result<(), String> {
    match fs::remove_file(older_path(data)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(format!(
            "cannot remove {}, now in {}: {e}",
            older_path(data).display(),
            file.display()
        )),
        _ => Ok(()),
    }
}

/// The journal's lines; and true when it must be made anew (its last line is torn, or has
/// no newline: the next line appended would join it).
fn read_journal(file: &Path, bytes: &[u8]) -> Result<(Vec<Binding>, bool), String> {
    let mut lines = Vec::new();
    let mut torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
    // The index of the part after the last newline.
    let last = bytes.iter().filter(|b| **b == b'\n').count();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Binding>(line) {
            Ok(b) => lines.push(b),
            // The last line without its newline: the relay stopped while appending it, and
            // its name's WELCOME never left.
            Err(_) if i == last => torn = true,
            Err(e) => {
                return Err(format!(
                    "the names' owners {} are damaged at line {} ({e}): restore it from a backup, or move it away to free every name",
                    file.display(),
                    i + 1
                ));
            }
        }
    }
    Ok((lines, torn))
}

/// The owners as relays before the journal kept them, if they did.
fn read_older(data: &Path) -> Result<Option<Vec<Binding>>, String> {
    #[derive(serde::Deserialize)]
    struct Owner {
        name: String,
        key: String,
    }
    let file = older_path(data);
    let Some(bytes) = read_if_there(&file)? else {
        return Ok(None);
    };
    let kept: std::collections::BTreeMap<String, Owner> = serde_json::from_slice(&bytes)
        .map_err(|e| {
            format!(
                "the names' owners {} are damaged ({e}): restore it from a backup, or move it away to free every name",
                file.display()
            )
        })?;
    Ok(Some(
        kept.into_values()
            .map(|o| Binding {
                name: o.name,
                key: Some(o.key),
            })
            .collect(),
    ))
}

/// Lines of the journal, one a binding.
fn lines<'a>(bindings: impl IntoIterator<Item = &'a Binding>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for b in bindings {
        serde_json::to_writer(&mut bytes, b).expect("a binding is plain text");
        bytes.push(b'\n');
    }
    bytes
}

/// Writes the journal anew, one line an owner: whole, synced, then moved over the old one.
fn rewrite(data: &Path, owners: &Owners) -> io::Result<()> {
    let file = path(data);
    let tmp = file.with_extension("jsonl.new");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&lines(&owners.bindings()))?;
    f.sync_all()?;
    fs::rename(&tmp, &file)?;
    fs::File::open(data)?.sync_all()
}

/// Appends the bindings made since the last write to the journal in `data`, and syncs it.
///
/// # Errors
/// When the journal cannot be written.
pub fn append(data: &Path, owners: &Owners) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let file = path(data);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .create(true)
        .append(true)
        .open(&file)?;
    let mut len = f.metadata()?.len();
    let mut last = [b'\n'];
    if len > 0 {
        f.read_exact_at(&mut last, len - 1)?;
    }
    if last[0] != b'\n' {
        // An earlier append failed and could not be cut back: cut it back now, to the end of
        // the last whole line, before anything follows it.
        len = last_line_end(&file, len)?;
        f.set_len(len)?;
    }
    let written = f
        .write_all(&lines(owners.unwritten()))
        .and_then(|()| f.sync_data());
    if let Err(e) = written {
        // Cut off what part of it was written (a full disk): the same lines go again next
        // turn, after the last whole one (and if this fails too, the next append cuts it).
        let _ = f.set_len(len);
        return Err(e);
    }
    if len == 0 {
        // The file may be new: its name on disk too.
        fs::File::open(data)?.sync_all()?;
    }
    Ok(())
}

/// The length of `file`'s first `len` bytes up to the end of their last whole line.
fn last_line_end(file: &Path, len: u64) -> io::Result<u64> {
    let bytes = fs::read(file)?;
    let within = &bytes[..usize::try_from(len).map_or(bytes.len(), |l| l.min(bytes.len()))];
    Ok(within
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i as u64 + 1))
}

/// `urc serve --release-name NAME`: frees `name` (and whatever looks like it) in `data`, for
/// another key to take; says whose it was.
///
/// # Errors
/// A one-line explanation when no key owns the name, or the file cannot be read or written.
pub fn release(data: &Path, name: &str) -> Result<String, String> {
    let mut owners = load(data)?;
    let party = name_key(name);
    let Some((held, key)) = owners.release(&party) else {
        return Err(format!(
            "no key owns the name {name} in {}",
            path(data).display()
        ));
    };
    // What a crash left in the journal goes into the logs first, and the name's private
    // conversations go aside with it, before the name is free.
    crate::serve::journal::Journal::open(data)?;
    let moved = crate::serve::layout::release_dms(data, &party)?;
    append(data, &owners).map_err(|e| format!("cannot write {}: {e}", path(data).display()))?;
    let aside = match moved.len() {
        0 => String::new(),
        n => format!(
            "; its {n} private conversation(s) moved to {}",
            data.join("released").join("dm").display()
        ),
    };
    Ok(format!(
        "released the name {held}, which belonged to the key {key}{aside}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::secure::keys::Keypair;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn bindings_are_appended_and_read_back() {
        let d = dir();
        let (a, b) = (Keypair::generate().public(), Keypair::generate().public());
        let mut owners = Owners::default();
        owners.bind(&name_key("alice"), "alice", a);
        append(d.path(), &owners).unwrap();
        owners.written();
        owners.bind(&name_key("bob"), "bob", b);
        append(d.path(), &owners).unwrap();
        let text = fs::read_to_string(path(d.path())).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let read = load(d.path()).unwrap();
        assert_eq!(read.get(&name_key("alice")), Some(("alice", a)));
        assert_eq!(read.get(&name_key("bob")), Some(("bob", b)));
        assert_eq!(
            fs::read_to_string(path(d.path())).unwrap(),
            text,
            "nothing to make anew"
        );
    }

    #[test]
    fn a_freed_name_and_a_torn_line_make_the_journal_anew() {
        let d = dir();
        let a = Keypair::generate().public();
        let mut owners = Owners::default();
        owners.bind(&name_key("alice"), "alice", a);
        owners.bind(&name_key("bob"), "bob", a);
        append(d.path(), &owners).unwrap();
        assert!(
            release(d.path(), "BOB")
                .unwrap()
                .contains("released the name bob")
        );
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(path(d.path()))
            .unwrap();
        f.write_all(br#"{"name":"carol","ke"#).unwrap();
        let read = load(d.path()).unwrap();
        assert_eq!(read.len(), 1);
        assert!(
            read.get(&name_key("carol")).is_none(),
            "the torn line binds nothing"
        );
        let text = fs::read_to_string(path(d.path())).unwrap();
        assert_eq!(text.lines().count(), 1, "made anew: {text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_whole_last_line_without_its_newline_is_made_whole_again() {
        let d = dir();
        let a = Keypair::generate().public();
        fs::write(
            path(d.path()),
            format!("{{\"name\":\"alice\",\"key\":\"{a}\"}}"),
        )
        .unwrap();
        assert_eq!(load(d.path()).unwrap().len(), 1);
        let mut owners = load(d.path()).unwrap();
        owners.bind(&name_key("bob"), "bob", a);
        append(d.path(), &owners).unwrap();
        assert_eq!(
            load(d.path()).unwrap().len(),
            2,
            "the next line did not join it"
        );
    }

    #[test]
    fn an_append_after_a_torn_one_cuts_it_off_first() {
        let d = dir();
        let a = Keypair::generate().public();
        let mut owners = Owners::default();
        owners.bind(&name_key("alice"), "alice", a);
        append(d.path(), &owners).unwrap();
        owners.written();
        // What a failed append, not cut back, left.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(path(d.path()))
            .unwrap();
        f.write_all(br#"{"name":"bo"#).unwrap();
        owners.bind(&name_key("bob"), "bob", a);
        append(d.path(), &owners).unwrap();
        let read = load(d.path()).unwrap();
        assert_eq!(read.len(), 2, "{:?}", fs::read_to_string(path(d.path())));
    }

    #[test]
    fn an_older_file_left_beside_the_journal_goes() {
        let d = dir();
        fs::write(path(d.path()), "").unwrap();
        fs::write(older_path(d.path()), "{}").unwrap();
        load(d.path()).unwrap();
        assert!(!older_path(d.path()).exists());
    }

    #[test]
    fn a_damaged_line_before_the_last_is_an_error_naming_it() {
        let d = dir();
        fs::write(path(d.path()), "{\"name\":\"alice\"\nnot json\n").unwrap();
        let e = load(d.path()).unwrap_err();
        assert!(e.contains("damaged at line 1"), "{e}");
    }

    #[test]
    fn the_older_file_is_taken_over_and_removed() {
        let d = dir();
        let a = Keypair::generate().public();
        let older = format!(
            "{{\n  \"alice\": {{\n    \"name\": \"Alice\",\n    \"key\": \"{a}\"\n  }}\n}}\n"
        );
        fs::write(older_path(d.path()), older).unwrap();
        let read = load(d.path()).unwrap();
        assert_eq!(read.get(&name_key("alice")), Some(("Alice", a)));
        assert!(!older_path(d.path()).exists());
        assert_eq!(load(d.path()).unwrap().len(), 1, "from the journal now");
    }
}
