//! What a client connection knows about itself: its peer's address as the
//! access log writes it and as X-Forwarded-For and X-Real-IP state it, and
//! whether it speaks TLS. Made once per connection and held inline, in the
//! connection's activity record ([`crate::idle::Activity`]): an idle
//! keep-alive connection's cost is counted in bytes, and two small strings
//! of their own would cost two allocations each connection.

use std::net::SocketAddr;

use crate::log_sink;

/// The longest peer text held: `[` an IPv6 address (39) `%` a scope id (10)
/// `]:` a port (5) is 58 bytes.
const TEXT_MAX: usize = 58;

#[derive(Debug)]
pub struct ConnInfo {
    pub tls: bool,
    /// The text's length.
    len: u8,
    /// Where the bare IP (no brackets, scope or port) lies in the text.
    ip_start: u8,
    ip_end: u8,
    /// `ip:port`, or `[ip]:port` (`[ip%scope]:port`) for IPv6.
    text: [u8; TEXT_MAX],
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        let mut formatted = Vec::with_capacity(TEXT_MAX);
        log_sink::push_socket_addr(&mut formatted, peer);
        let mut text = [0; TEXT_MAX];
        // `SocketAddr`'s longest text fits; `min` only keeps the copy in
        // bounds.
        let len = formatted.len().min(TEXT_MAX);
        text[..len].copy_from_slice(&formatted[..len]);
        let (ip_start, ip_end) = match peer {
            SocketAddr::V4(_) => (0, formatted.iter().position(|&b| b == b':')),
            SocketAddr::V6(_) => (1, formatted.iter().position(|&b| b == b'%' || b == b']')),
        };
        let ip_end = ip_end.unwrap_or(len).min(len);
        ConnInfo {
            tls,
            len: small(len),
            ip_start: small(ip_start),
            ip_end: small(ip_end),
            text,
        }
    }

    /// The peer as the access log writes it: `ip:port`, `[ip]:port`.
    pub fn peer_text(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }

    /// The peer's IP alone, as X-Forwarded-For and X-Real-IP state it.
    pub fn peer_ip(&self) -> &[u8] {
        &self.text[usize::from(self.ip_start)..usize::from(self.ip_end)]
    }
}

/// A position within the text: at most [`TEXT_MAX`].
fn small(n: usize) -> u8 {
    u8::try_from(n.min(TEXT_MAX)).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_and_ip_for_each_family() {
        for (addr, text, ip) in [
            ("127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1"),
            ("[::1]:443", "[::1]:443", "::1"),
            (
                "[::ffff:10.0.0.1]:8080",
                "[::ffff:10.0.0.1]:8080",
                "::ffff:10.0.0.1",
            ),
        ] {
            let info = ConnInfo::new(addr.parse().expect("addr"), true);
            assert_eq!(info.peer_text(), text.as_bytes());
            assert_eq!(info.peer_ip(), ip.as_bytes());
            assert!(info.tls);
        }
    }

    #[test]
    fn the_longest_address_fits_whole() {
        let widest = std::net::SocketAddrV6::new(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse()
                .expect("ip"),
            65535,
            0,
            u32::MAX,
        );
        let info = ConnInfo::new(SocketAddr::V6(widest), false);
        assert_eq!(
            info.peer_text(),
            b"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535"
        );
        assert_eq!(info.peer_ip(), b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(info.peer_text().len(), TEXT_MAX);
    }
}
