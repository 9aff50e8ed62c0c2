//! systemd's readiness protocol (`Type=notify` units): tells the service manager when a server
//! is ready and when it starts stopping, so `systemctl start` returns only once the listeners
//! are up and dependants are not started against a half-started server.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1`) to the socket systemd names in `NOTIFY_SOCKET`. Outside
/// systemd (no variable) this does nothing; a failure is logged, never fatal: the server
/// works the same without a service manager.
pub(crate) fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Some(socket) = socket.to_str() else {
        tracing::warn!("NOTIFY_SOCKET is not valid UTF-8: not notifying systemd");
        return;
    };
    if let Err(err) = notify_to(socket, state) {
        tracing::warn!(%err, socket, "could not notify systemd ({state})");
    }
}

/// `socket` is a path, or `@name` for an abstract socket (what systemd usually hands out).
fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let address = match socket.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(socket)?,
    };
    let sender = UnixDatagram::unbound()?;
    sender.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(listener: &UnixDatagram) -> String {
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    #[test]
    fn notifies_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        assert_eq!(receive(&listener), "READY=1");
    }

    #[test]
    fn notifies_an_abstract_socket() {
        let name = format!("coder-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        assert_eq!(receive(&listener), "STOPPING=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        assert!(notify_to("/nonexistent/notify", "READY=1").is_err());
    }
}
