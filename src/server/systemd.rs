//! Readiness for systemd (`Type=notify`, deploy/shikaku.service): when `$NOTIFY_SOCKET` names
//! a socket, `shikaku serve` sends `READY=1` once its listeners answer, after the generation
//! was verified (which takes about a minute for a national index: the unit's start timeout
//! covers it), so that nothing ordered after the unit, and no health check, sees it early.
//!
//! The protocol is one datagram of `KEY=value` lines to a Unix socket (a path, or with a
//! leading `@` a name in the abstract namespace); written here rather than with a crate, as it
//! is those few lines.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;

/// The environment variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Tells systemd `state` (e.g. `READY=1\nSTATUS=…`). `Ok(false)` when not run by systemd
/// (no `$NOTIFY_SOCKET`).
pub fn notify(state: &str) -> std::io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET_ENV) {
        Some(socket) if !socket.is_empty() => send(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to the notification socket `socket`.
pub fn send(socket: &OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}

/// The readiness message for a server answering from `generation`.
pub fn ready_message(generation: &str) -> String {
    format!("READY=1\nSTATUS=serving generation {generation}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), &ready_message("g1")).unwrap();
        assert_eq!(received(&listener), "READY=1\nSTATUS=serving generation g1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("shikaku-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(OsStr::new(&format!("@{name}")), "READY=1").unwrap();
        assert_eq!(received(&listener), "READY=1");
    }

    #[test]
    fn a_missing_socket_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(send(dir.path().join("none").as_os_str(), "READY=1").is_err());
    }
}
