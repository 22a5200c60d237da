//! systemd's readiness protocol (`Type=notify`, sd_notify(3)): when
//! `NOTIFY_SOCKET` is set, state lines go to it as one datagram each —
//! `READY=1` once the node serves, `RELOADING=1` and `READY=1` around a
//! reload, `STOPPING=1` when shutdown begins. Without it, nothing happens.

use std::os::unix::net::UnixDatagram;

use tracing::debug;

/// Sends `state` (newline-separated `KEY=value` lines) to systemd, if it
/// asked for them.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, state) {
        debug!(error = %e, "sd_notify: cannot tell systemd {state:?}");
    }
}

/// Tells systemd a reload is over, and in `STATUS=` (what `systemctl
/// status` shows) whether the file went live: a refused file leaves the
/// node serving its previous config, which the status then says until a
/// reload applies one; settings the node serves otherwise until a restart
/// (`restart_pending`: `listen`, `admin`...) are named (an outside audit:
/// a reload that moved the admin API said `serving`, and the API stayed
/// where it was).
pub fn reloaded(outcome: jwtgate_admin::ReloadOutcome, restart_pending: &[&str]) {
    use jwtgate_admin::ReloadOutcome;
    let status = match outcome {
        ReloadOutcome::Applied | ReloadOutcome::Unchanged if restart_pending.is_empty() => {
            "serving".to_owned()
        }
        ReloadOutcome::Applied | ReloadOutcome::Unchanged => format!(
            "serving; waiting for a restart (systemctl restart; see the log): {}",
            restart_pending.join(", ")
        ),
        ReloadOutcome::Invalid => {
            "serving the previous config: the config file was refused as invalid (see the log)"
                .to_owned()
        }
        ReloadOutcome::Protected => {
            "serving the previous config: the config file was refused, it changes a protected \
             policy (see the log)"
                .to_owned()
        }
    };
    notify(&format!("READY=1\nSTATUS={status}"));
}

fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_encoded_bytes();
    match bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): `@name`.
        Some(name) => {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(state.as_bytes(), &addr)?;
            }
            #[cfg(not(target_os = "linux"))]
            {
                let _ = name;
                return Err(std::io::Error::other("abstract sockets are Linux-only"));
            }
        }
        None => {
            sock.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}
