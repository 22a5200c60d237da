//! The process's one way to stderr for log lines, without a write system
//! call per line on the request path.
//! Formatted lines go through a bounded channel to one writer thread, which
//! batches them into a buffer and flushes whenever the channel runs dry: at
//! low traffic every line appears at once; under load, one write carries many
//! lines. If the channel is full the line is dropped and counted, so that a
//! slow stderr never stalls requests.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

/// Lines that may wait for the writer thread.
const QUEUE: usize = 16 * 1024;

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

static SENDER: OnceLock<SyncSender<Msg>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Starts the writer thread. Until it runs (or if it cannot start), lines
/// are written to stderr directly.
pub fn start() {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("jwtgate-log".into())
        .spawn(move || write_loop(rx));
    if spawned.is_ok() {
        let _ = SENDER.set(tx);
    }
}

/// Queues one complete line (with its newline).
pub fn send(line: Vec<u8>) {
    match SENDER.get() {
        Some(tx) => match tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(Msg::Line(line))) => {
                let _ = io::stderr().write_all(&line);
            }
            Err(TrySendError::Disconnected(_)) => {}
        },
        None => {
            let _ = io::stderr().write_all(&line);
        }
    }
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
        send(std::mem::take(&mut self.buf));
    }
}

/// Waits (bounded) until every line logged so far is written. Call before
/// the process exits.
pub fn flush() {
    let Some(tx) = SENDER.get() else { return };
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    if tx.send(Msg::Flush(done_tx)).is_ok() {
        let _ = done_rx.recv_timeout(Duration::from_secs(2));
    }
}

fn write_loop(rx: Receiver<Msg>) {
    let mut out = BufWriter::with_capacity(64 * 1024, io::stderr());
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "jwtgate: {dropped} log line(s) dropped: stderr too slow"
            );
        }
        let _ = out.flush();
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Appends the current UTC time as `2026-11-22T20:59:57.515934Z`, the
/// layout tracing uses for the other lines.
pub fn timestamp(out: &mut Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    );
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

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_683), (2023, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
