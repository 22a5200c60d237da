//! A WebSocket's connection once its upstream agreed to switch (`101`):
//! bytes pass both ways as they come, unread (but for the heads of the
//! frames, where a token holds the tunnel: [`frames`]), until either side
//! closes, neither sends for the route's read timeout, the token that
//! opened it is revoked or expires ([`token`]: both sides are told so in a
//! close frame), or the gateway stops. The handshake was
//! authenticated like any request; what passes afterwards is the
//! application's (beyond SPEC: the README's "WebSocket" says how).

mod frames;
mod token;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::upstream::Upgraded;

pub(crate) use token::HeldToken;

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// One side closed; its close was passed on to the other.
    Closed,
    /// Neither side sent anything for the idle timeout.
    Idle,
    /// The gateway is stopping.
    Stopped,
    /// A read or write failed (a reset, a broken TLS record).
    Broken,
    /// The token that opened it was revoked.
    Revoked,
    /// A cut-off names the token's subject.
    CutOff,
    /// The token expired, on a route with `websocket_close_at_exp`.
    Expired,
}

impl Ended {
    /// The reason a close frame gives the client (code `1008`) when the
    /// tunnel ended for its token.
    fn close_reason(self) -> Option<&'static str> {
        match self {
            Ended::Revoked => Some("token revoked"),
            Ended::CutOff => Some("token revoked: its subject was cut off"),
            Ended::Expired => Some("token expired"),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ended::Closed => "closed",
            Ended::Idle => "idle",
            Ended::Stopped => "stopped",
            Ended::Broken => "broken",
            Ended::Revoked => "revoked",
            Ended::CutOff => "cut_off",
            Ended::Expired => "expired",
        }
    }
}

/// How long the other way of a tunnel is still passed on once one way has
/// ended: a close frame, or the last bytes read, on their way.
const GRACE: Duration = Duration::from_secs(2);

/// How long the close frame of a tunnel ended for its token may take to
/// go out: a client that does not read is not waited for.
const CLOSE_FRAME_TIMEOUT: Duration = Duration::from_secs(1);

/// Joins `client` to `upstream` until the tunnel ends. `client_early` is
/// what the client sent after its handshake, read with it; it goes
/// upstream first (and its buffer is freed then). `greeting`: what the
/// upstream sent after its `101`, already passed on to the client.
pub(crate) async fn join<C>(
    client: &mut C,
    client_early: BytesMut,
    (greeting, upstream): (&[u8], &mut Upgraded),
    stopped: impl Future<Output = ()>,
) -> Ended
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let idle = upstream.idle_timeout;
    let held = upstream.token.take();
    let outlived = async {
        match &held {
            Some(token) => token.outlived().await,
            None => std::future::pending().await,
        }
    };
    let moved = AtomicBool::new(false);
    // Only a tunnel that may end for its token says why in a close frame,
    // to both sides: where the frames each was sent stand.
    let boundary = |sent: &[u8]| {
        let mut frames = frames::FrameBoundary::default();
        frames.passed(sent);
        Mutex::new(frames)
    };
    let frames = held.as_ref().map(|_| boundary(greeting));
    // The client's early bytes count once they are written: a close frame
    // the token's end sends while they are on their way could fall inside
    // one of its frames (the review), so none goes until then.
    let frames_up = held.as_ref().map(|_| {
        let unsent = boundary(&[]);
        if !client_early.is_empty() {
            if let Ok(mut f) = unsent.lock() {
                f.shut();
            }
        }
        unsent
    });
    let run = async {
        if !client_early.is_empty() {
            // Flushed: over TLS a record may wait in the stream, and the
            // copy below flushes only what it writes itself.
            let sent = async {
                upstream.write_all(&client_early).await?;
                upstream.flush().await
            };
            if sent.await.is_err() {
                return Ended::Broken;
            }
            if let Some(Ok(mut f)) = frames_up.as_ref().map(Mutex::lock) {
                *f = frames::FrameBoundary::default();
                f.passed(&client_early);
            }
        }
        drop(client_early);
        let (mut from_client, mut to_client) = tokio::io::split(Watched {
            io: &mut *client,
            moved: &moved,
            frames: frames.as_ref(),
        });
        let (mut from_upstream, mut to_upstream) = tokio::io::split(Watched {
            io: &mut *upstream,
            moved: &moved,
            frames: frames_up.as_ref(),
        });
        // Each way until its end, which is passed on (a FIN, a TLS
        // close_notify). The first way to end ends the tunnel, once the
        // other has had `GRACE` to pass on what is on its way (the close
        // frame answering one): a WebSocket says goodbye in its own frames
        // before either side closes, and a tunnel half closed (its upstream
        // gone, a client that never closes) would otherwise be held until
        // the idle timeout (nginx ends its tunnels so too).
        let up = async {
            let copied = tokio::io::copy(&mut from_client, &mut to_upstream).await;
            let _ = to_upstream.shutdown().await;
            copied
        };
        let down = async {
            let copied = tokio::io::copy(&mut from_upstream, &mut to_client).await;
            let _ = to_client.shutdown().await;
            copied
        };
        let (mut up, mut down) = (std::pin::pin!(up), std::pin::pin!(down));
        let grace = GRACE.min(idle);
        let copied = tokio::select! {
            copied = &mut up => {
                let _ = tokio::time::timeout(grace, &mut down).await;
                copied
            }
            copied = &mut down => {
                let _ = tokio::time::timeout(grace, &mut up).await;
                copied
            }
        };
        match copied {
            Ok(_) => Ended::Closed,
            Err(_) => Ended::Broken,
        }
    };
    // Checked four times a timeout: a quiet tunnel closes between 1 and
    // 1.25 timeouts after its last byte, and a busy one costs no timer
    // per read.
    let quiet = async {
        let step = (idle / 4).max(Duration::from_millis(10));
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(step).await;
            if moved.swap(false, Ordering::Relaxed) {
                last = Instant::now();
            } else if last.elapsed() >= idle {
                return Ended::Idle;
            }
        }
    };
    let ended = tokio::select! {
        ended = run => ended,
        ended = quiet => ended,
        ended = outlived => ended,
        () = stopped => Ended::Stopped,
    };
    let may_close = |frames: Option<Mutex<frames::FrameBoundary>>| {
        frames
            .and_then(|f| f.into_inner().ok())
            .is_some_and(|f| f.may_close())
    };
    if let Some(reason) = ended.close_reason() {
        // The upstream is told too, as the client would tell it (masked):
        // it ended the session for the token, not a broken connection.
        let to_client =
            may_close(frames).then(|| (&mut *client, frames::close_frame(reason, None)));
        let to_upstream = may_close(frames_up).then(|| {
            (
                &mut *upstream,
                frames::close_frame(reason, Some(frames::mask_key())),
            )
        });
        // Each side's failure is its own: the other is still told.
        let said = async {
            let _ = tokio::join!(say(to_client), say(to_upstream));
        };
        let _ = tokio::time::timeout(CLOSE_FRAME_TIMEOUT, said).await;
    }
    ended
}

/// Writes a close frame to one side of a tunnel, then shuts it.
async fn say<T: AsyncWrite + Unpin>(side: Option<(&mut T, Vec<u8>)>) -> io::Result<()> {
    let Some((io, frame)) = side else {
        return Ok(());
    };
    io.write_all(&frame).await?;
    io.flush().await?;
    io.shutdown().await
}

/// A stream that notes when bytes are read from it, and where the frames
/// written to it stand (either side's, of a tunnel held by its token).
struct Watched<'a, T> {
    io: &'a mut T,
    moved: &'a AtomicBool,
    frames: Option<&'a Mutex<frames::FrameBoundary>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut *this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.moved.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.io).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(frames)) = (&polled, this.frames) {
            if let Ok(mut frames) = frames.lock() {
                frames.passed(buf.get(..*n).unwrap_or(buf));
            }
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Nothing may follow a shutdown, a close frame included.
        if let Some(Ok(mut frames)) = this.frames.map(Mutex::lock) {
            frames.shut();
        }
        Pin::new(&mut *this.io).poll_shutdown(cx)
    }
}
