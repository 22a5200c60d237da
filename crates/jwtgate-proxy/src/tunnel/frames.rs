//! Where the WebSocket frames passed on to the client, and to the
//! upstream, stand (RFC 6455 §5.2), so that a tunnel the gateway ends for
//! its token can say why to both in a close frame (`1008`, policy
//! violation) rather than drop the connection mid-message: one may go only
//! between two frames. Only the frame heads
//! are read, and only those passed on; payloads are counted, not looked at.

/// The longest frame head: two bytes, an eight-byte length, a mask key.
const MAX_HEAD: usize = 14;

/// The close frame's opcode.
const CLOSE: u8 = 0x8;

/// What of the current frame has been passed on.
#[derive(Debug, Default)]
pub(crate) struct FrameBoundary {
    head: [u8; MAX_HEAD],
    /// Bytes of the current frame's head passed on so far.
    have: usize,
    /// Bytes of the current frame's payload still to come.
    payload_left: u64,
    /// A close frame has been passed on, or the stream shut: nothing more
    /// may follow (RFC 6455 §5.5.1).
    closed: bool,
}

impl FrameBoundary {
    /// Notes `bytes`, as they were passed on.
    pub(crate) fn passed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.payload_left -= skip as u64;
                bytes = bytes.get(skip..).unwrap_or_default();
                continue;
            }
            let Some((&byte, rest)) = bytes.split_first() else {
                break;
            };
            bytes = rest;
            if let Some(slot) = self.head.get_mut(self.have) {
                *slot = byte;
            }
            self.have += 1;
            if Some(self.have) == self.head_len() {
                self.payload_left = self.payload_len();
                self.closed |= self.head[0] & 0x0f == CLOSE;
                self.have = 0;
            }
        }
    }

    /// The stream was shut: nothing more may be written.
    pub(crate) fn shut(&mut self) {
        self.closed = true;
    }

    /// Whether a close frame may go next: whole frames only have been
    /// passed on, none of them a close frame, and the stream is open.
    pub(crate) fn may_close(&self) -> bool {
        !self.closed && self.have == 0 && self.payload_left == 0
    }

    /// The length of the current frame's head, once its second byte is in.
    fn head_len(&self) -> Option<usize> {
        if self.have < 2 {
            return None;
        }
        let second = self.head[1];
        let extended = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        Some(2 + extended + mask)
    }

    fn payload_len(&self) -> u64 {
        match self.head[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => {
                let mut eight = [0; 8];
                eight.copy_from_slice(&self.head[2..10]);
                u64::from_be_bytes(eight)
            }
            short => u64::from(short),
        }
    }
}

/// A close frame: `1008` (policy violation) and `reason` (cut to 123
/// bytes, at a character's start); from the server unmasked, from the
/// client side (to the upstream) masked with `mask` (RFC 6455 §5.3).
pub(crate) fn close_frame(reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = reason.as_bytes().get(..end).unwrap_or_default();
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&1008u16.to_be_bytes());
    payload.extend_from_slice(reason);
    let mut frame = Vec::with_capacity(6 + payload.len());
    // FIN and opcode 8 (close); the mask bit and the payload's length.
    frame.push(0x88);
    let length = payload.len() as u8;
    match mask {
        None => {
            frame.push(length);
            frame.extend_from_slice(&payload);
        }
        Some(key) => {
            frame.push(0x80 | length);
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
    }
    frame
}

/// A masking key for a frame to the upstream, from the system's random
/// source, as RFC 6455 §5.3 asks ("a strong source of entropy"): no
/// frame's content is to be guessed from the bytes on the wire (§10.3).
/// Should the source fail, the standard library's per-process random hash
/// keys stand in: the key is not a secret.
pub(crate) fn mask_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut key).is_err() {
        use std::hash::{BuildHasher, Hasher};
        let bits = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        key = (bits as u32).to_be_bytes();
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let mask = if masked { 0x80 } else { 0 };
        match payload {
            0..=125 => f.push(mask | payload as u8),
            126..=65535 => {
                f.push(mask | 126);
                f.extend_from_slice(&(payload as u16).to_be_bytes());
            }
            _ => {
                f.push(mask | 127);
                f.extend_from_slice(&(payload as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(0x5a, payload));
        f
    }

    /// Frames of every length form, passed on whole or a byte at a time:
    /// between frames exactly at their ends.
    #[test]
    fn frame_ends_are_found_however_the_bytes_come() {
        for (payload, masked) in [
            (0, false),
            (5, false),
            (125, true),
            (126, false),
            (70_000, false),
            (300, true),
        ] {
            let f = frame(payload, masked);
            let mut whole = FrameBoundary::default();
            whole.passed(&f);
            assert!(whole.may_close(), "{payload}");
            let mut bytewise = FrameBoundary::default();
            for (i, b) in f.iter().enumerate() {
                assert!(
                    i == 0 || !bytewise.may_close(),
                    "{payload}: between frames at byte {i}"
                );
                bytewise.passed(std::slice::from_ref(b));
            }
            assert!(bytewise.may_close(), "{payload}");
            // A frame and part of the next.
            let mut two = f.clone();
            two.extend_from_slice(&frame(3, false)[..2]);
            let mut split = FrameBoundary::default();
            split.passed(&two);
            assert!(!split.may_close(), "{payload}");
            split.passed(&[0x5a; 3]);
            assert!(split.may_close(), "{payload}");
        }
    }

    /// After the upstream's own close frame, or a shutdown, no close frame
    /// of the gateway's may follow.
    #[test]
    fn nothing_follows_a_close_frame_or_a_shutdown() {
        let mut f = FrameBoundary::default();
        f.passed(&frame(4, false));
        f.passed(&close_frame("bye", None));
        assert!(!f.may_close());
        let mut f = FrameBoundary::default();
        f.passed(&frame(4, false));
        f.shut();
        assert!(!f.may_close());
    }

    #[test]
    fn the_close_frame_says_1008_and_why() {
        assert_eq!(
            close_frame("token revoked", None),
            b"\x88\x0f\x03\xf0token revoked".to_vec()
        );
        assert_eq!(close_frame(&"x".repeat(200), None).len(), 4 + 123);
        // Cut at a character's start: "é" is two bytes.
        assert_eq!(close_frame(&"é".repeat(100), None).len(), 4 + 122);
        // To the upstream: masked, as a client's frames are; the payload
        // unmasks to the same code and reason.
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let masked = close_frame("token revoked", Some(key));
        assert_eq!(&masked[..6], &[0x88, 0x8f, 0x37, 0xfa, 0x21, 0x3d]);
        let unmasked: Vec<u8> = masked[6..]
            .iter()
            .zip(key.iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect();
        assert_eq!(unmasked, b"\x03\xf0token revoked");
    }

    #[test]
    fn masking_keys_are_not_repeated() {
        let keys: std::collections::HashSet<[u8; 4]> = (0..64).map(|_| mask_key()).collect();
        assert!(keys.len() > 60, "only {} distinct keys in 64", keys.len());
    }
}
