//! This relay's id in the cluster, the same each time it starts: made once, kept in `<data>/relay.id`, so that a relay restarted puts right its own presence entries of its last run rather than taking them for another relay's.

use std::path::Path;

use uuid::Uuid;

/// The file of the relay's id in its data directory.
pub const ID_FILE: &str = "relay.id";

/// The id kept in `data` (made and written there the first time).
///
/// # Errors
/// A one-line explanation when the file cannot be read or written, or holds no id.
pub fn relay_id(data: &Path) -> Result<Uuid, String> {
    let path = data.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Uuid::try_parse(text.trim()).map_err(|_| {
            format!(
                "{} holds no relay id: remove it, and the relay makes a new one",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Uuid::new_v4();
            std::fs::write(&path, format!("{id}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = relay_id(dir.path()).unwrap();
        assert_eq!(relay_id(dir.path()).unwrap(), id);
        std::fs::write(dir.path().join(ID_FILE), "garbage").unwrap();
        let e = relay_id(dir.path()).unwrap_err();
        assert!(
            e.ends_with("holds no relay id: remove it, and the relay makes a new one"),
            "{e}"
        );
    }
}
