//! Logs to stderr without a write system call per line on the request path.
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

use tracing_subscriber::fmt::MakeWriter;

/// Lines that may wait for the writer thread.
const QUEUE: usize = 16 * 1024;

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

static SENDER: OnceLock<SyncSender<Msg>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Installs the global subscriber (filter from `JWTGATE_LOG`, default info).
pub fn init() {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("jwtgate-log".into())
        .spawn(move || write_loop(rx));
    // Without the thread, log synchronously rather than not at all.
    let writer = match spawned {
        Ok(_) => {
            let _ = SENDER.set(tx.clone());
            Channel(Some(tx))
        }
        Err(_) => Channel(None),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("JWTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .init();
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

/// `MakeWriter` for the fmt layer: one [`Line`] per event.
struct Channel(Option<SyncSender<Msg>>);

impl<'a> MakeWriter<'a> for Channel {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            buf: Vec::new(),
            tx: self.0.clone(),
        }
    }
}

/// Collects one formatted event and queues it when dropped.
struct Line {
    buf: Vec<u8>,
    tx: Option<SyncSender<Msg>>,
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
        let line = std::mem::take(&mut self.buf);
        match &self.tx {
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
}
