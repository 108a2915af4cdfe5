//! Who owns each name, on disk: `<data>/names.json`, written whole and moved into place whenever a name is bound or freed, read at start; and `urc serve --release-name`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::proto::name::name_key;
use crate::relay::owners::{Owner, Owners};

/// The file in the data directory `data`.
pub fn path(data: &Path) -> PathBuf {
    data.join("names.json")
}

/// The owners kept in `data` (none when the file does not exist yet).
///
/// # Errors
/// A one-line explanation naming the file when it cannot be read or is not what the relay
/// writes.
pub fn load(data: &Path) -> Result<Owners, String> {
    let file = path(data);
    let bytes = match fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Owners::default()),
        Err(e) => {
            return Err(format!(
                "cannot read the names' owners {}: {e}",
                file.display()
            ));
        }
    };
    let kept: BTreeMap<String, Owner> = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "the names' owners {} are damaged ({e}): restore it from a backup, or move it away to free every name",
            file.display()
        )
    })?;
    let (owners, bad) = Owners::from_kept(kept);
    if !bad.is_empty() {
        tracing::warn!(names = ?bad, file = %file.display(), "names whose owner's key does not read are free");
    }
    Ok(owners)
}

/// Writes the owners to `data`: whole, synced, then moved over the old file.
///
/// # Errors
/// When the file cannot be written.
pub fn save(data: &Path, owners: &Owners) -> io::Result<()> {
    let file = path(data);
    let tmp = file.with_extension("json.new");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(&owners.to_kept()).map_err(io::Error::other)?)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, &file)?;
    fs::File::open(data)?.sync_all()
}

/// `urc serve --release-name NAME`: frees `name` (and whatever looks like it) in `data`, for
/// another key to take; says whose it was.
///
/// # Errors
/// A one-line explanation when no key owns the name, or the file cannot be read or written.
pub fn release(data: &Path, name: &str) -> Result<String, String> {
    let mut owners = load(data)?;
    let Some((held, key)) = owners.release(&name_key(name)) else {
        return Err(format!(
            "no key owns the name {name} in {}",
            path(data).display()
        ));
    };
    save(data, &owners).map_err(|e| format!("cannot write {}: {e}", path(data).display()))?;
    Ok(format!(
        "released the name {held}, which belonged to the key {key}"
    ))
}
