//! The process's one way to stderr for log lines, without a system call on
//! the request path.
//!
//! A line is appended to a shared buffer under a short lock. One writer
//! thread swaps the buffer out and writes it with one system call:
//! - under load it wakes on its own every [`FLUSH_INTERVAL`] (or when the
//!   buffer passes [`WAKE_AT`]), so requests never wake it: waking a thread
//!   per line cost as much CPU as proxying the request (bench/peers.sh,
//!   twice the system time per request);
//! - after a quiet interval it sleeps until the next line, which wakes it at
//!   once: at low traffic every line appears immediately.
//!
//! If stderr is slower than the lines coming in, the buffer stops at
//! [`MAX_BUFFER`] and further lines are dropped and counted, so a slow
//! stderr never stalls requests.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a busy writer waits between writes.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// A buffer this full wakes the writer before its interval is up.
const WAKE_AT: usize = 256 * 1024;
/// Lines beyond this many waiting bytes are dropped (and counted).
const MAX_BUFFER: usize = 8 * 1024 * 1024;

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Held while writing, so batches reach stderr in the order taken.
    output: Mutex<()>,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    dropped: u64,
    /// The writer sleeps until woken (nothing arrived for a whole interval).
    idle: bool,
    /// The writer was woken and has not yet taken the buffer.
    woken: bool,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Lines are JSON objects (`JWTGATE_LOG_FORMAT=json`), not text.
static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses JSON lines (for the lines written here; tracing's own lines
/// are configured alongside, by the binary).
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Whether access lines are wanted, as the log filter said once it was
/// installed: 0 not said (ask the filter), 1 yes, 2 no.
static ACCESS: AtomicU8 = AtomicU8::new(0);

/// Notes whether the filter lets `jwtgate::access` lines through. The
/// filter is set once, at start: asked at each request, it cost about 140
/// instructions of one (the dispatcher, then every directive's target
/// compared), more with each directive (`bench/callgrind.sh plain`).
pub fn set_access(on: bool) {
    ACCESS.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether to write an access line (see [`set_access`]).
pub fn access() -> bool {
    match ACCESS.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => tracing::enabled!(target: "jwtgate::access", tracing::Level::INFO),
    }
}

/// Starts the writer thread. Until it runs (or if it cannot start), lines
/// are written to stderr directly.
pub fn start() {
    let shared = SHARED.get_or_init(Shared::new);
    let spawned = std::thread::Builder::new()
        .name("jwtgate-log".into())
        .spawn(move || shared.write_loop(&mut io::stderr()));
    if spawned.is_err() {
        eprintln!("jwtgate: no log writer thread; writing log lines directly");
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves valid bytes behind: keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Queues one complete line (with its newline).
pub fn send(line: &[u8]) {
    match SHARED.get() {
        Some(shared) => shared.push(line),
        None => {
            let _ = io::stderr().write_all(line);
        }
    }
}

impl Shared {
    fn new() -> Self {
        Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            output: Mutex::new(()),
        }
    }

    /// Appends a line; wakes the writer only if it sleeps until woken, or
    /// if the buffer passed [`WAKE_AT`].
    fn push(&self, line: &[u8]) {
        let mut st = lock(&self.state);
        if st.buf.len() + line.len() > MAX_BUFFER {
            st.dropped += 1;
            return;
        }
        st.buf.extend_from_slice(line);
        let wake = !st.woken && (st.idle || st.buf.len() >= WAKE_AT);
        if wake {
            st.woken = true;
            st.idle = false;
        }
        drop(st);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Takes what is buffered and writes it to `out`; returns how many
    /// bytes of lines it wrote.
    fn write_batch(&self, spare: &mut Vec<u8>, out: &mut dyn Write) -> usize {
        let _output = lock(&self.output);
        let dropped = {
            let mut st = lock(&self.state);
            st.woken = false;
            std::mem::swap(&mut st.buf, spare);
            std::mem::take(&mut st.dropped)
        };
        let _ = out.write_all(spare);
        if dropped > 0 {
            let _ = out.write_all(&dropped_line(dropped, Instant::now()));
            metrics::counter!(crate::metrics::LOG_LINES_DROPPED).increment(dropped);
        }
        let _ = out.flush();
        let written = spare.len();
        spare.clear();
        // Keep a large buffer from one burst from staying allocated forever.
        if spare.capacity() > WAKE_AT * 2 {
            spare.shrink_to(WAKE_AT);
        }
        written
    }

    fn write_loop(&self, out: &mut dyn Write) {
        let mut spare = Vec::with_capacity(64 * 1024);
        loop {
            let written = self.write_batch(&mut spare, out);
            let mut st = lock(&self.state);
            if st.buf.is_empty() && written == 0 {
                // Quiet for a whole interval: sleep until a line arrives.
                st.idle = true;
                while st.idle {
                    st = self
                        .wake
                        .wait(st)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            } else if !st.woken {
                let (guard, _) = self
                    .wake
                    .wait_timeout(st, FLUSH_INTERVAL)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                st = guard;
            }
            drop(st);
        }
    }
}

/// The line that says how many lines were dropped, laid out as tracing's
/// other lines are (text or JSON), with their timestamp and level.
fn dropped_line(dropped: u64, now: Instant) -> Vec<u8> {
    let mut line = Vec::with_capacity(160);
    if json() {
        line.extend_from_slice(br#"{"timestamp":""#);
        timestamp(&mut line, now);
        line.extend_from_slice(
            br#"","level":"WARN","message":"log lines dropped: stderr too slow","dropped":"#,
        );
        line.extend_from_slice(dropped.to_string().as_bytes());
        line.extend_from_slice(b",\"target\":\"jwtgate::log\"}\n");
    } else {
        timestamp(&mut line, now);
        line.extend_from_slice(b"  WARN jwtgate::log: log lines dropped: stderr too slow dropped=");
        line.extend_from_slice(dropped.to_string().as_bytes());
        line.push(b'\n');
    }
    line
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// Formats one line into a reused per-thread buffer and queues it: no
/// allocation per line.
pub fn send_with(format: impl FnOnce(&mut Vec<u8>)) {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            format(&mut buf);
            send(&buf);
        }
        Err(_) => {
            let mut buf = Vec::new();
            format(&mut buf);
            send(&buf);
        }
    });
}

/// A `Write` that collects one formatted event and queues it when dropped
/// (the writer tracing's fmt layer gets per event).
#[derive(Default)]
pub struct Line {
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        send(&self.buf);
    }
}

/// Writes the lines queued so far, if nobody holds the sink's locks: for
/// the panic hook, which must never wait (the panic may be the writer's
/// own, or come while its thread holds a lock), so that the lines logged
/// before a panic come before its line.
pub fn flush_if_free() {
    let Some(shared) = SHARED.get() else {
        return;
    };
    let Ok(_output) = shared.output.try_lock() else {
        return;
    };
    let queued = match shared.state.try_lock() {
        Ok(mut st) => std::mem::take(&mut st.buf),
        Err(_) => return,
    };
    let _ = io::stderr().write_all(&queued);
}

/// Writes every line queued so far. Call before the process exits.
pub fn flush() {
    if let Some(shared) = SHARED.get() {
        let mut spare = Vec::new();
        shared.write_batch(&mut spare, &mut io::stderr());
    }
}

/// Appends the UTC time of `now` as `2026-11-22T20:59:57.515934Z`, the
/// layout tracing uses for the other lines. The part up to the second is
/// formatted once per second per thread.
///
/// `now` is an instant the caller read anyway (a request's end, which also
/// gives its duration): the wall time is that instant's distance from an
/// anchor, a pair of wall and monotonic readings the thread takes afresh
/// once a second, so a request's line costs no second clock read. A step
/// of the wall clock shows within a second; a slew (at most 500 ppm) moves
/// a line by under a millisecond.
pub fn timestamp(out: &mut Vec<u8>, now: Instant) {
    thread_local! {
        static CLOCK: RefCell<Clock> = const {
            RefCell::new(Clock { anchor: None, second: u64::MAX, text: [0; 19] })
        };
    }
    CLOCK.with(|clock| {
        let clock = &mut *clock.borrow_mut();
        let since_epoch = anchored(&mut clock.anchor, now, || {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            (Instant::now(), wall)
        });
        let secs = since_epoch.as_secs();
        if clock.second != secs {
            let mut text = Vec::with_capacity(19);
            date_time(&mut text, secs);
            if let Ok(fixed) = <[u8; 19]>::try_from(text.as_slice()) {
                (clock.second, clock.text) = (secs, fixed);
                out.extend_from_slice(&clock.text);
            } else {
                // A year past 9999: no cache, still a correct line.
                out.extend_from_slice(&text);
            }
        } else {
            out.extend_from_slice(&clock.text);
        }
        out.push(b'.');
        push_padded(out, u64::from(since_epoch.subsec_micros()), 6);
        out.push(b'Z');
    });
}

/// A thread's state for [`timestamp`].
struct Clock {
    /// A monotonic instant and the wall time (since the epoch) read with it.
    anchor: Option<(Instant, Duration)>,
    /// The second `text` shows, as `YYYY-MM-DDTHH:MM:SS`.
    second: u64,
    text: [u8; 19],
}

/// How long a thread's anchor of [`timestamp`] serves before the wall clock
/// is read again.
const ANCHOR_FOR: Duration = Duration::from_secs(1);

/// The wall time (since the epoch) at `now`, from `anchor` while it is
/// fresh; otherwise `fresh()` reads the two clocks together (an instant and
/// the wall time at it), which become the anchor.
fn anchored(
    anchor: &mut Option<(Instant, Duration)>,
    now: Instant,
    fresh: impl FnOnce() -> (Instant, Duration),
) -> Duration {
    if let Some((at, at_wall)) = *anchor {
        // None for an instant before the anchor (read earlier, logged later):
        // the anchor is renewed rather than the time computed backwards
        // from an old one.
        if let Some(since) = now.checked_duration_since(at) {
            if since < ANCHOR_FOR {
                return at_wall + since;
            }
        }
    }
    let (at, at_wall) = fresh();
    *anchor = Some((at, at_wall));
    match now.checked_duration_since(at) {
        Some(since) => at_wall + since,
        // `now` was read a moment before the pair: that much earlier.
        None => at_wall.saturating_sub(at - now),
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for a Unix time in seconds.
fn date_time(out: &mut Vec<u8>, secs: u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    );
}

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    push_padded(out, n, 1);
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `s` quoted as `{:?}` would, without `core::fmt` when it is
/// printable ASCII (route and consumer names, refusal reasons with their
/// quoted values): only `"` and `\` need a backslash then.
pub fn push_quoted(out: &mut Vec<u8>, s: &str) {
    // Most names need no backslash at all: copied whole.
    let verbatim = |b: &u8| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\';
    if s.as_bytes().iter().all(verbatim) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        for &b in s.as_bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// Appends `s` as a JSON string: quotes, backslashes, control characters
/// and the invisible characters that change how a line reads (bidi
/// controls such as U+202E, zero-width ones, line separators: see
/// [`misleads`]) escaped, everything else as is (UTF-8). A request path
/// with U+202E went raw into JSON lines, shown reversed by a terminal or
/// a log viewer, where the text format escapes it (an outside audit).
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\0'..='\u{1f}' | '\u{7f}' => push_json_escape(out, u32::from(c)),
            ' '..='~' => out.push(c as u8),
            c if misleads(c) => push_json_escape(out, u32::from(c)),
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

/// `\uXXXX`, or a surrogate pair of them beyond the Basic Multilingual
/// Plane (RFC 8259 §7).
fn push_json_escape(out: &mut Vec<u8>, c: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut unit = |u: u32| {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[(u >> shift & 0xf) as usize]);
        }
    };
    match c.checked_sub(0x1_0000) {
        Some(above) => {
            unit(0xd800 | above >> 10);
            unit(0xdc00 | (above & 0x3ff));
        }
        None => unit(c),
    }
}

/// The characters a JSON line escapes beyond ASCII's controls: the C1
/// controls, and those that show as nothing or reorder what follows.
fn misleads(c: char) -> bool {
    c.is_control() || jwtgate_core::invisible::is_invisible(c)
}

/// Appends `ip:port` (`[ip]:port` for IPv6), as `Display` would.
pub fn push_socket_addr(out: &mut Vec<u8>, addr: std::net::SocketAddr) {
    match addr {
        std::net::SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(octet));
            }
            out.push(b':');
            push_u64(out, u64::from(v4.port()));
        }
        std::net::SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small positive numbers by construction.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` the test can read while the writer thread holds it.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_batched_in_order_and_overflow_is_counted() {
        let sink = Shared::new();
        sink.push(b"one\n");
        sink.push(b"two\n");
        // Not idle (the writer never ran) and far below WAKE_AT: no wake-up.
        assert!(!lock(&sink.state).woken);
        let big = vec![b'x'; MAX_BUFFER - 8];
        sink.push(&big);
        sink.push(b"dropped line\n");
        let mut out = Vec::new();
        let mut spare = Vec::new();
        let written = sink.write_batch(&mut spare, &mut out);
        assert_eq!(written, 8 + big.len());
        assert!(out.starts_with(b"one\ntwo\nxxx"));
        let text = String::from_utf8_lossy(&out[written..]).into_owned();
        // Laid out as tracing's lines: a timestamp, the level, the target.
        let (stamp, said) = text.split_once("  ").expect("a timestamp first");
        assert_eq!(stamp.len(), "2026-11-22T20:59:57.515934Z".len(), "{text}");
        assert!(stamp.ends_with('Z'), "{text}");
        assert_eq!(
            said,
            "WARN jwtgate::log: log lines dropped: stderr too slow dropped=1\n"
        );
        // The buffer is empty again and takes lines.
        sink.push(b"three\n");
        out.clear();
        sink.write_batch(&mut spare, &mut out);
        assert_eq!(out, b"three\n");
    }

    #[test]
    fn an_idle_writer_is_woken_by_the_next_line() {
        let sink: &'static Shared = Box::leak(Box::new(Shared::new()));
        let out = Captured::default();
        let mut writer_out = out.clone();
        std::thread::spawn(move || sink.write_loop(&mut writer_out));
        // The writer goes idle after one quiet interval.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !lock(&sink.state).idle {
            assert!(
                std::time::Instant::now() < deadline,
                "writer never went idle"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        sink.push(b"hello\n");
        while lock(&out.0).as_slice() != b"hello\n" {
            assert!(std::time::Instant::now() < deadline, "line never written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn fast_formatting_matches_core_fmt() {
        for n in [0u64, 7, 10, 99, 412, 65_535, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for s in [
            "orders",
            "-",
            "a b",
            "quo\"te",
            "back\\slash",
            "kid \"forged-1\" is not in the set \\ \"x\"",
            "tab\t",
            "é",
            "",
        ] {
            let mut out = Vec::new();
            push_quoted(&mut out, s);
            assert_eq!(String::from_utf8(out).expect("utf8"), format!("{s:?}"));
        }
        for a in [
            "10.0.0.7:51234",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:8080",
        ] {
            let addr: std::net::SocketAddr = a.parse().expect("addr");
            let mut out = Vec::new();
            push_socket_addr(&mut out, addr);
            assert_eq!(String::from_utf8(out).expect("utf8"), a);
        }
    }

    /// JSON strings read back as what was written, and no character that
    /// reorders or hides what follows goes out raw: a path with U+202E
    /// was shown reversed by a terminal (an outside audit).
    #[test]
    fn json_strings_escape_controls_and_misleading_characters() {
        for (s, written) in [
            ("/a\u{202e}evil", r#""/a\u202eevil""#),
            ("q\"b\\n\n\u{1}\u{7f}", r#""q\"b\\n\n\u0001\u007f""#),
            (
                "\u{200b}\u{2028}\u{2066}\u{feff}\u{85}",
                r#""\u200b\u2028\u2066\ufeff\u0085""#,
            ),
            ("tag\u{e0041}\u{a0}", r#""tag\udb40\udc41\u00a0""#),
            ("é日本😀", "\"é日本😀\""),
            ("/orders/42", r#""/orders/42""#),
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            let text = String::from_utf8(out).expect("utf8");
            assert_eq!(text, written);
            let read: String = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(read, s);
        }
        // Every character reads back as written, escaped or not.
        for c in (0..=0x10ffff_u32).filter_map(char::from_u32) {
            let mut out = Vec::new();
            push_json_str(&mut out, &c.to_string());
            let read: String = serde_json::from_slice(&out).expect("valid JSON");
            assert_eq!(read, c.to_string());
        }
    }

    #[test]
    fn timestamp_layout() {
        let mut out = Vec::new();
        timestamp(&mut out, Instant::now());
        timestamp(&mut out, Instant::now());
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.len(), 2 * 27, "{text}");
        for stamp in [&text[..27], &text[27..]] {
            let b = stamp.as_bytes();
            assert_eq!(
                (b[4], b[7], b[10], b[13], b[16], b[19], b[26]),
                (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
                "{stamp}"
            );
            assert!(stamp.starts_with("20"), "{stamp}");
        }
        let mut fixed = Vec::new();
        date_time(&mut fixed, 1_795_378_102);
        assert_eq!(fixed, b"2026-11-22T20:08:22");
    }

    #[test]
    fn wall_time_from_an_anchor() {
        let mut anchor = None;
        let t0 = Instant::now();
        let w0 = Duration::from_secs(1_795_378_102);
        // The first reading anchors; `now` was read 3 µs before the pair.
        let us = Duration::from_micros;
        assert_eq!(anchored(&mut anchor, t0, || (t0 + us(3), w0)), w0 - us(3));
        // Within a second the clocks are not read: the instant's distance
        // from the anchor is added.
        let later = t0 + Duration::from_millis(999);
        let wall = anchored(&mut anchor, later, || panic!("the clocks were read"));
        assert_eq!(wall, w0 + Duration::from_millis(999) - us(3));
        // A second on, they are read again (a step of the wall clock shows).
        let stepped = Duration::from_secs(1_900_000_000);
        let t1 = t0 + us(3) + ANCHOR_FOR;
        assert_eq!(anchored(&mut anchor, t1, || (t1, stepped)), stepped);
        assert_eq!(
            anchored(&mut anchor, t1 + us(5), || panic!("read again")),
            stepped + us(5)
        );
        // An instant before the anchor (taken earlier, logged later) renews
        // it, and is placed before the new pair, never computed from the old.
        let w1 = Duration::from_secs(1_900_000_010);
        let t2 = t1 + Duration::from_secs(2);
        let before = t1 - Duration::from_millis(1);
        assert_eq!(
            anchored(&mut anchor, before, || (t2, w1)),
            w1 - Duration::from_millis(2_001)
        );
        assert_eq!(anchor, Some((t2, w1)));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_683), (2023, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
