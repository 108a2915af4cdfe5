//! Key files on disk, for both shells: a private key written once with mode 0600 (whole, then moved into place), read back, and refused when others may read it. A key's private half is never printed.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::proto::secure::keys::Keypair;

/// The key pair in `path`, made and written there first when the file does not exist (its
/// directory too); `true` when it was made now.
///
/// # Errors
/// A one-line explanation naming the file: it cannot be read or written, others may read it,
/// or it holds no key.
pub fn load_or_create(path: &Path, what: &str) -> Result<(Keypair, bool), String> {
    match load(path, what) {
        Ok(pair) => Ok((pair, false)),
        Err(Missing) => create(path, what).map(|pair| (pair, true)),
        Err(Bad(e)) => Err(e),
    }
}

/// Why a key file was not read.
enum Unread {
    Missing,
    Bad(String),
}
use Unread::{Bad, Missing};

fn load(path: &Path, what: &str) -> Result<Keypair, Unread> {
    let shown = path.display();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Missing),
        Err(e) => return Err(Bad(format!("cannot read {what} {shown}: {e}"))),
    };
    if !meta.is_file() {
        return Err(Bad(format!(
            "{what} {shown} is not a file: remove it or choose another path"
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Bad(format!(
            "{what} {shown} may be read by others (mode {mode:03o}): run chmod 600 {shown}"
        )));
    }
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(path).map_err(|e| Bad(format!("cannot read {what} {shown}: {e}")))?,
    );
    Keypair::from_file_text(&text).map_err(|e| {
        Bad(format!(
            "{what} {shown} holds no key ({e}): move it away to make a new one"
        ))
    })
}

fn create(path: &Path, what: &str) -> Result<Keypair, String> {
    let shown = path.display();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let pair = Keypair::generate();
    // Written whole under another name, then moved into place: a crash leaves no half key.
    let temp = path.with_extension("key.new");
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        // A file left by another umask keeps its mode when reopened: set it.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(pair.to_file_text().as_bytes())?;
        f.sync_all()?;
        // Never over a key another process made meanwhile.
        fs::hard_link(&temp, path)?;
        fs::remove_file(&temp)?;
        if let Ok(d) = fs::File::open(dir) {
            d.sync_all()?;
        }
        Ok::<_, io::Error>(())
    })();
    match written {
        Ok(()) => Ok(pair),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&temp);
            load(path, what).map_err(|u| match u {
                Missing => format!("{what} {shown} vanished as it was made: try again"),
                Bad(e) => e,
            })
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(format!("cannot write {what} {shown}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/relay.key");
        let (made, new) = load_or_create(&path, "the relay's key file").unwrap();
        assert!(new);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, new) = load_or_create(&path, "the relay's key file").unwrap();
        assert!(!new);
        assert_eq!(again.public(), made.public());
        assert!(!path.with_extension("key.new").exists());
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        load_or_create(&path, "the identity file").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&path, "the identity file").unwrap_err();
        assert!(
            e.contains("may be read by others (mode 644): run chmod 600"),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_a_key_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        fs::write(&path, "hello\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_or_create(&path, "the identity file").unwrap_err();
        assert!(e.contains("holds no key"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "hello\n");
    }
}
