//! Where the WebSocket frames passed on to the client stand (RFC 6455
//! §5.2), so that a tunnel the gateway ends for its token can say why in a
//! close frame (`1008`, policy violation) rather than drop the connection
//! mid-message: one may go only between two frames. Only the frame heads
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

/// A close frame from the server (unmasked): `1008` (policy violation)
/// and `reason` (cut to 123 bytes, at a character's start).
pub(crate) fn close_frame(reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = reason.as_bytes().get(..end).unwrap_or_default();
    let mut frame = Vec::with_capacity(4 + reason.len());
    // FIN and opcode 8 (close); the payload's length, unmasked.
    frame.push(0x88);
    frame.push(2 + reason.len() as u8);
    frame.extend_from_slice(&1008u16.to_be_bytes());
    frame.extend_from_slice(reason);
    frame
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
        f.passed(&close_frame("bye"));
        assert!(!f.may_close());
        let mut f = FrameBoundary::default();
        f.passed(&frame(4, false));
        f.shut();
        assert!(!f.may_close());
    }

    #[test]
    fn the_close_frame_says_1008_and_why() {
        assert_eq!(
            close_frame("token revoked"),
            b"\x88\x0f\x03\xf0token revoked".to_vec()
        );
        assert_eq!(close_frame(&"x".repeat(200)).len(), 4 + 123);
        // Cut at a character's start: "é" is two bytes.
        assert_eq!(close_frame(&"é".repeat(100)).len(), 4 + 122);
    }
}
