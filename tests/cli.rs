//! The command line as a new user types it: host names and default ports, and one-line errors
//! that name the path or address that is wrong.

mod common;

use common::{Relay, events, urc};

#[test]
fn host_names_are_accepted_by_bind_and_server() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start_at("localhost:0", data.path(), &[]);
    assert!(relay.addr.ip().is_loopback(), "{}", relay.addr);
    let (status, out, err) = join_at(&format!("localhost:{}", relay.addr.port()));
    assert!(status.success(), "{err}");
    assert!(
        events(&out)
            .iter()
            .any(|e| e["event"] == "notice" && e["message"] == "joined as bot"),
        "{out}"
    );
}

/// `urc join --json --name bot` at `server` with no input; its status, stdout and stderr.
fn join_at(server: &str) -> (std::process::ExitStatus, String, String) {
    let out = urc()
        .args([
            "join", "--json", "--name", "bot", "--wait", "1", "--server", server,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn bad_data_paths_get_one_line_naming_the_path_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("messages.txt");
    std::fs::write(&file, "not a directory").unwrap();
    for (data, says) in [
        (
            file.clone(),
            format!("--data {} is a file, not a directory", file.display()),
        ),
        (
            file.join("urc"),
            format!("{} is a file, not a directory", file.display()),
        ),
    ] {
        let out = urc()
            .args(["serve", "--bind", "127.0.0.1:0", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&says), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "not a directory",
        "the file is left as it was"
    );
}

#[test]
fn a_server_without_a_port_is_looked_for_on_7707() {
    // Nothing need listen there: the error names the address the client tried.
    let (status, _, err) = join_at("127.0.0.2");
    assert!(!status.success());
    assert!(
        err.contains("no answer from a relay at 127.0.0.2:7707"),
        "{err}"
    );
}

/// A name the rules refuse is said before anything is sent, on one line that names the
/// character as U+XXXX (or the rule), and the client exits 1: no relay is asked.
#[test]
fn a_bad_name_is_refused_before_joining_naming_the_character() {
    for (name, says) in [
        (
            "alice\u{200D}",
            "invalid --name: the name has U+200D, an invisible or format character: choose a \
             name without it",
        ),
        (
            "\u{2800}alice",
            "invalid --name: the name has U+2800, a character that draws nothing",
        ),
        (
            "ur\u{0441}",
            "invalid --name: the name looks like urc, the relay's own name: choose another",
        ),
    ] {
        // Nothing listens at this address: the error is the name's, not the relay's.
        let out = urc()
            .args(["join", "--server", "127.0.0.2:9", "--name", name])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{name:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("urc: "), "{err}");
        assert!(err.contains(says), "{name:?}: {err}");
    }
}
