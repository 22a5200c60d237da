//! Client connections speaking HTTP/1.1, served by a loop of our own: read a
//! head, run the pipeline, write the answer, and again.
//!
//! Why not hyper's server, which this replaced: a connection there keeps an
//! 8 KiB read buffer, an 8 KiB write buffer and a 3.6 KiB slot for the
//! request's future for as long as it lives, 22.6 KiB per idle keep-alive
//! connection where HAProxy keeps 1.4 KiB (`bench/idle.sh`). Here an idle
//! connection holds its socket and a small task (272 bytes of state in a
//! 384-byte task): buffers come from its worker's pools (`recycle`) when
//! bytes arrive and go back when the exchange ends, and an exchange's state,
//! the pipeline's future included, is boxed for the request only. Nothing
//! waits on the stop signal per connection: a stop closes the connections
//! waiting for a request through the idle watch (`idle`). It also costs
//! fewer instructions per request (`bench/callgrind.sh plain`).
//!
//! The wire format (what is a valid head, how bodies are framed) is pure
//! code in `h1::inbound`; this module only moves bytes.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::{BodyError, GatewayBody, ReadBody, RequestBody};
use crate::h1::inbound::{
    encode_refusal, encode_response_head, encode_switch_head, may_complete_head,
    parse_request_head, response_framing, response_says_close, RequestHead, H2_PREFACE,
};
use crate::h1::{push_chunk_size, ChunkedDecoder, Decoded, RequestFraming, ResponseFraming};
use crate::idle::{Activity, Busy};
use crate::metrics::connections::OpenWebSocket;
use crate::pipeline;
use crate::recycle;
use crate::tunnel::Ended;
use crate::upstream::ConnPool;

use super::SharedGateway;

/// A client connection's byte stream: plain TCP or TLS over it.
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when the socket under the stream has bytes to read. Waited on
    /// while no buffer is held; only after a read that left the stream's
    /// own buffers empty (see [`Conn::next_head`]).
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// What the connection's first bytes may be, as its TLS handshake's
    /// ALPN decided (RFC 9113 §3.3, RFC 7301): after `h2` only the HTTP/2
    /// preface, after `http/1.1` or `http/1.0` only HTTP/1.x; with no ALPN
    /// (plain TCP, or a client that offered none) either, as it opens.
    fn preface(&self) -> Preface;
}

/// Whether a connection may or must open with the HTTP/2 preface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Preface {
    /// Either protocol: HTTP/2 if the first bytes are its preface.
    Sniff,
    /// HTTP/2 only: other first bytes close the connection.
    Required,
    /// HTTP/1.x only: the preface is read as a request line (and refused).
    Refused,
}

impl Transport for TcpStream {
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn preface(&self) -> Preface {
        Preface::Sniff
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }

    fn preface(&self) -> Preface {
        match self.get_ref().1.alpn_protocol() {
            Some(b"h2") => Preface::Required,
            Some(_) => Preface::Refused,
            None => Preface::Sniff,
        }
    }
}

/// What one connection's loop works with.
pub(super) struct ConnCtx {
    pub gateway: SharedGateway,
    pub pool: ConnPool,
    /// Whether an exchange is in flight; also says when the gateway stops
    /// (an idle connection is closed then, a busy one closes after its
    /// answer). It holds the connection's peer ([`Activity::info`]).
    pub activity: Arc<Activity>,
}

/// How a connection's HTTP/1.1 service ended.
pub(super) enum Served {
    Closed,
    /// The client opened with the HTTP/2 preface: see
    /// [`Connection::into_h2`].
    H2,
}

/// One client connection: its stream, its HTTP/1.1 state and what it works
/// with. This is what an idle keep-alive connection keeps (with its task),
/// so it stays small: the connection's future holds it in place and borrows
/// it, rather than moving it into futures of its own.
pub(super) struct Connection<IO> {
    conn: Conn<IO>,
    ctx: ConnCtx,
}

impl<IO: Transport> Connection<IO> {
    pub(super) fn new(io: IO, ctx: ConnCtx) -> Self {
        Connection {
            conn: Conn {
                io,
                buf: BytesMut::new(),
                // A TLS handshake may have read the first request's records
                // with its own: the first read does not wait on the socket.
                may_hold_more: true,
                body: Remaining::Done,
                continue_due: false,
                continue_sent: 0,
            },
            ctx,
        }
    }

    /// Serves HTTP/1.1 requests until the client or the gateway closes the
    /// connection, or the client turns out to speak HTTP/2.
    pub(super) async fn serve(&mut self) -> Served {
        let Connection { conn, ctx } = self;
        let mut preface = conn.io.preface();
        // Decided in the loop, done after it: what is awaited inside the
        // loop is all an idle connection's future has room for.
        let end = loop {
            let head = match conn.next_head(preface, &ctx.activity).await {
                Next::Head(head) => head,
                Next::H2 => return Served::H2,
                Next::Refused(status, why) => break End::Refuse(status, why),
                Next::Closed => break End::Close,
            };
            // Only a connection's first bytes may be the preface.
            preface = Preface::Refused;
            // Boxed for the exchange only: the request's state (its head,
            // the pipeline's future, the answer on its way out: 5 KiB) is
            // not part of what an idle connection keeps.
            match Box::pin(conn.exchange(head, ctx)).await {
                After::Next => {}
                After::Close => break End::Close,
                After::Linger => break End::Linger,
            }
        };
        // Boxed, as the exchange: rare, and otherwise part of what every
        // idle connection keeps.
        match end {
            End::Refuse(status, why) => {
                ctx.activity.stop_waiting();
                pipeline::record_refused_head(
                    &ctx.gateway.load(),
                    ctx.activity.info(),
                    status.as_u16(),
                    &why,
                );
                Box::pin(conn.refuse(status, &why)).await;
            }
            End::Linger => Box::pin(conn.linger()).await,
            // The client went away or stopped reading: nothing more is
            // written, not even a TLS close_notify.
            End::Close => conn.release_buffer(),
        }
        Served::Closed
    }

    /// After [`Served::H2`]: the stream, with the bytes already read put
    /// back in front of it, and what the connection works with, for an
    /// HTTP/2 server.
    pub(super) fn into_h2(self) -> (Rewind<IO>, ConnCtx) {
        let Connection { conn, ctx } = self;
        let prefix = conn.buf.freeze();
        (
            Rewind {
                prefix,
                io: conn.io,
            },
            ctx,
        )
    }
}

/// How the HTTP/1.1 loop ends.
enum End {
    /// Answer a head that could not be read (and why), then close.
    Refuse(StatusCode, String),
    Linger,
    Close,
}

// Returned once per request and matched at once: boxing the head would
// cost an allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    H2,
    /// A head that could not be read: the answer's status, and why.
    Refused(StatusCode, String),
    Closed,
}

/// What becomes of the connection after an exchange.
enum After {
    /// Ready for the next request.
    Next,
    Close,
    /// Close, reading and dropping what the client still sends for a
    /// moment: the rest of a body that was not read, pipelined requests.
    Linger,
}

/// How long, and how many bytes, a closing connection reads and drops what
/// the client is still sending, so that the answer reaches it rather than a
/// reset (a socket closed with unread bytes sends RST, and the client's
/// stack may drop the answer it had not read yet).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Reads one bounded piece of a request at a time.
const READ_CHUNK: usize = 8 * 1024;

struct Conn<IO> {
    io: IO,
    /// Bytes read and not yet used; empty and without capacity while the
    /// connection idles.
    buf: BytesMut,
    /// The stream may hold bytes the socket no longer shows (TLS plaintext
    /// decrypted with the handshake, or beyond a read that filled the
    /// buffer): read before waiting on the socket.
    may_hold_more: bool,
    /// The rest of the current request's body.
    body: Remaining,
    /// `100 Continue` is owed before the body is read.
    continue_due: bool,
    continue_sent: usize,
}

/// What is left of a request body on the connection.
enum Remaining {
    Done,
    Length(u64),
    Chunked(ChunkedDecoder),
    /// The body broke off or was malformed: the connection cannot be reused.
    Broken,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl<IO: Transport> Conn<IO> {
    /// Waits for the next request head. While nothing has arrived no buffer
    /// is held. Meanwhile the connection is waiting in `activity`: a stop
    /// closes it (its task is dropped), and while a head is only partly
    /// here.
    async fn next_head(&mut self, preface: Preface, activity: &Activity) -> Next {
        if !activity.await_request() {
            // The gateway stopped while the previous exchange ran.
            return Next::Closed;
        }
        // Bytes of the buffer already known not to end a head.
        let mut scanned = 0;
        loop {
            if !self.buf.is_empty() && preface == Preface::Required {
                if self.buf.starts_with(H2_PREFACE) {
                    return Next::H2;
                }
                if !H2_PREFACE.starts_with(&self.buf) {
                    // ALPN said h2 and the client says something else:
                    // a connection error (RFC 9113 §3.3), as in Envoy.
                    debug!("ALPN h2, but the connection did not open with the HTTP/2 preface");
                    return Next::Closed;
                }
            } else if !self.buf.is_empty() {
                let sniff = preface == Preface::Sniff;
                if may_complete_head(&self.buf, scanned) {
                    if sniff && self.buf.starts_with(H2_PREFACE) {
                        return Next::H2;
                    }
                    // Could still become the HTTP/2 preface: read on.
                    if !(sniff && H2_PREFACE.starts_with(&self.buf)) {
                        let mut spare = recycle::header_map();
                        let parsed = parse_request_head(&mut self.buf, &mut spare);
                        recycle::give_header_map(spare);
                        match parsed {
                            Ok(Some(head)) => return Next::Head(head),
                            Ok(None) => {}
                            Err(e) => {
                                debug!(error = %e, "refused a request head");
                                return Next::Refused(e.status(), e.to_string());
                            }
                        }
                    }
                }
                scanned = self.buf.len();
            }
            let read = if !self.buf.is_empty() {
                // A head partly here: read on.
                self.read().await
            } else if self.may_hold_more {
                // The stream may have bytes the socket does not show: try it
                // once; if it has none, wait on the socket like any idle one.
                match poll_fn(|cx| Poll::Ready(self.poll_read(cx))).await {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        self.may_hold_more = false;
                        self.release_buffer();
                        continue;
                    }
                }
            } else {
                self.release_buffer();
                // `&mut`: a shared borrow held across the wait would need the
                // stream to be `Sync`.
                let io = &mut self.io;
                if poll_fn(move |cx| io.poll_socket_readable(cx))
                    .await
                    .is_err()
                {
                    return Next::Closed;
                }
                self.read().await
            };
            match read {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {}
            }
        }
    }

    /// One read into the buffer, taking one from the pool if none is held.
    async fn read(&mut self) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx)).await
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() == 0 {
            self.buf = recycle::read_buffer(READ_CHUNK);
        }
        self.buf.reserve(READ_CHUNK);
        let room = self.buf.capacity() - self.buf.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.buf
        ))?;
        self.may_hold_more = n == room;
        Poll::Ready(Ok(n))
    }

    /// Gives the read buffer back to the pool when it holds nothing.
    fn release_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            recycle::give_read_buffer(std::mem::take(&mut self.buf), POOL_MAX_CAPACITY);
        }
    }

    /// Answers a head that could not be read (`why`), and closes.
    async fn refuse(&mut self, status: StatusCode, why: &str) {
        let mut out = Vec::new();
        with_date(|date| encode_refusal(&mut out, status, why, date));
        if send_bounded(&mut self.io, &out).await.is_ok() {
            self.linger().await;
        }
    }

    /// Closes our side, then reads and drops what the client still sends,
    /// all within [`LINGER`] and [`LINGER_BYTES`].
    async fn linger(&mut self) {
        self.buf.clear();
        let mut dropped = 0;
        let drain = async {
            // Within the bound too: a TLS close_notify is a write.
            if self.io.shutdown().await.is_err() {
                return;
            }
            while dropped < LINGER_BYTES {
                self.buf.clear();
                match self.read().await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => dropped += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
        self.buf.clear();
        self.release_buffer();
    }

    /// Serves one request: the pipeline's answer is written whole.
    ///
    /// Not an `async fn`: that keeps each argument twice in its future (as
    /// passed, and as moved into the body), and this future is allocated
    /// and copied once per request. The head is taken apart before the
    /// future is made, and its parts are used in place.
    fn exchange<'a>(
        &'a mut self,
        head: RequestHead,
        ctx: &'a ConnCtx,
    ) -> impl Future<Output = After> + 'a {
        let RequestHead {
            parts,
            body,
            keep_alive,
            expect_continue,
        } = head;
        async move {
            let busy = ctx.activity.begin();
            let method = parts.method.clone();
            let version = parts.version;
            let http10 = version == http::Version::HTTP_10;
            self.body = match body {
                RequestFraming::Empty => Remaining::Done,
                RequestFraming::Length(n) => Remaining::Length(n),
                RequestFraming::Chunked => Remaining::Chunked(ChunkedDecoder::default()),
            };
            self.continue_due = expect_continue && body != RequestFraming::Empty;
            self.continue_sent = 0;
            let gateway = ctx.gateway.load_full();
            let response = {
                let body = match body {
                    RequestFraming::Empty => RequestBody::Empty,
                    _ => RequestBody::H1(self),
                };
                pipeline::handle(
                    gateway,
                    &ctx.pool,
                    Request::from_parts(parts, body),
                    ctx.activity.info(),
                )
                .await
            };
            // A body the pipeline did not read to its end is skipped when it is
            // already here; otherwise the connection cannot be reused (the
            // client may still be sending it, or wait for `100 Continue`).
            let body_done = self.skip_buffered_body();
            let mut keep_alive = keep_alive && body_done && !ctx.activity.stopping();
            let (parts, mut body) = response.into_parts();
            if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                // Boxed: a tunnel's state is no part of every request's.
                return Box::pin(self.switch(parts, body, ctx, busy)).await;
            }
            let passed = body.take_passed();
            if response_says_close(&parts.headers) {
                keep_alive = false;
            }
            let framing =
                response_framing(&method, version, parts.status, body.size_hint().exact());
            if framing == ResponseFraming::UntilClose {
                keep_alive = false;
            }
            // A `100 Continue` begun while the body was read, then abandoned
            // (the pipeline stopped reading): finished first, so that the answer
            // does not start inside it.
            if self.continue_sent > 0 && self.continue_due {
                let rest = CONTINUE.get(self.continue_sent..).unwrap_or_default();
                if send_bounded(&mut self.io, rest).await.is_err() {
                    return After::Close;
                }
                self.continue_due = false;
            }
            let mut out = recycle::write_buffer();
            encode_response_head(
                &mut out,
                parts.status,
                passed.as_deref(),
                &parts.headers,
                framing,
                keep_alive,
                http10,
                |out| with_date(|date| out.extend_from_slice(date)),
            );
            recycle::give_header_map(parts.headers);
            let sent = self.send_body(&mut out, body, framing, busy).await;
            recycle::give_write_buffer(out, 2 * GATHER);
            match (sent.is_ok(), keep_alive) {
                (true, true) => After::Next,
                // The client may still be sending (a body not read, requests
                // pipelined behind this one): closing with bytes unread would
                // reset the connection and could lose the answer just sent.
                (true, false) => After::Linger,
                (false, _) => After::Close,
            }
        }
    }

    /// The upstream agreed to a WebSocket (`101`): its answer goes to the
    /// client, then the two connections are joined until the tunnel ends,
    /// and the client's closes.
    async fn switch(
        &mut self,
        parts: http::response::Parts,
        mut body: GatewayBody,
        ctx: &ConnCtx,
        busy: Busy,
    ) -> After {
        let passed = body.take_passed();
        let Some(mut upstream) = body.take_tunnel() else {
            // Only the upstream's own 101 to a handshake carries one.
            debug!("a 101 without an upstream connection; closing");
            return After::Close;
        };
        // Counted before the client can hear of it.
        let open = OpenWebSocket::new();
        let mut out = recycle::write_buffer();
        encode_switch_head(&mut out, passed.as_deref(), &parts.headers, |out| {
            with_date(|date| out.extend_from_slice(date))
        });
        recycle::give_header_map(parts.headers);
        // What the upstream sent after its 101 (a greeting), read with it.
        let greeting = upstream.take_early();
        out.extend_from_slice(&greeting);
        let sent = send_bounded(&mut self.io, &out).await;
        recycle::give_write_buffer(out, 2 * GATHER);
        if sent.is_err() {
            return After::Close;
        }
        // The read buffer goes back to the pool: the tunnel reads into its
        // own.
        let early = self.buf.split();
        self.release_buffer();
        let ended = crate::tunnel::join(
            &mut self.io,
            early,
            (&greeting, &mut upstream),
            ctx.activity.stopped(),
        )
        .await;
        debug!(ended = ended.as_str(), "WebSocket tunnel ended");
        drop(open);
        drop(busy);
        match ended {
            // The client may still be sending (its close frame): closed
            // with bytes unread, the socket would reset, and could take
            // the last frames written with it.
            Ended::Closed => After::Linger,
            Ended::Idle
            | Ended::Stopped
            | Ended::Broken
            | Ended::Revoked
            | Ended::CutOff
            | Ended::Expired => After::Close,
        }
    }

    /// Writes the response body after the head already in `out`, framed as
    /// `framing` says; small pieces are gathered into `out` and written
    /// together, and written as soon as the body has nothing more ready. An error: the connection must close (the client got a
    /// short or broken body, or went away).
    ///
    /// The connection stays `busy` while the body is produced; every write
    /// is bounded by [`SEND_TIMEOUT`], so a client that stops reading is
    /// dropped however large the answer.
    async fn send_body(
        &mut self,
        out: &mut Vec<u8>,
        mut body: GatewayBody,
        framing: ResponseFraming,
        busy: Busy,
    ) -> io::Result<()> {
        let mut left = match framing {
            ResponseFraming::Length(n) => Some(n),
            _ => None,
        };
        if framing != ResponseFraming::Empty {
            loop {
                let frame =
                    match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                        Poll::Ready(frame) => frame,
                        // Nothing more for now: what is gathered goes out, so
                        // that a stream of small pieces (server-sent events, a
                        // long poll) reaches the client as it comes.
                        Poll::Pending => {
                            if !out.is_empty() {
                                send_bounded(&mut self.io, out).await?;
                                out.clear();
                            }
                            poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                        }
                    };
                let data = match frame {
                    None => break,
                    Some(Err(e)) => {
                        super::response_cut_off(&e, "its connection is closed");
                        send_bounded(&mut self.io, out).await?;
                        return Err(io::Error::other("response body broke off"));
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        // Trailers are not passed on.
                        Err(_) => continue,
                    },
                };
                if data.is_empty() {
                    continue;
                }
                let data = match &mut left {
                    Some(n) => {
                        // More than the length announced: never sent.
                        let take = usize::try_from(*n).map_or(data.len(), |n| n.min(data.len()));
                        *n -= take as u64;
                        data.slice(..take)
                    }
                    None => data,
                };
                if framing == ResponseFraming::Chunked {
                    push_chunk_size(out, data.len());
                }
                self.push_or_write(out, &data).await?;
                if framing == ResponseFraming::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if left == Some(0) {
                    break;
                }
            }
            if framing == ResponseFraming::Chunked {
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        drop(busy);
        send_bounded(&mut self.io, out).await?;
        out.clear();
        if left.is_some_and(|n| n > 0) {
            return Err(io::Error::other("response body shorter than its length"));
        }
        Ok(())
    }

    /// Appends `data` to `out` when it is small; otherwise writes `out` and
    /// then `data` itself, without copying it.
    async fn push_or_write(&mut self, out: &mut Vec<u8>, data: &Bytes) -> io::Result<()> {
        if out.len() + data.len() <= GATHER {
            out.extend_from_slice(data);
            return Ok(());
        }
        send_bounded(&mut self.io, out).await?;
        out.clear();
        send_bounded(&mut self.io, data).await
    }

    /// Skips what is left of the request body if it is all in the buffer.
    /// Whether the connection is then at the start of the next request.
    fn skip_buffered_body(&mut self) -> bool {
        loop {
            match &mut self.body {
                Remaining::Done => return true,
                Remaining::Broken => return false,
                Remaining::Length(n) => {
                    let have = self.buf.len() as u64;
                    if have < *n {
                        return false;
                    }
                    // n <= have, a usize: no truncation.
                    self.buf.advance(*n as usize);
                    self.body = Remaining::Done;
                }
                Remaining::Chunked(decoder) => match decoder.decode(&mut self.buf) {
                    Ok(Decoded::Data(_)) => {}
                    Ok(Decoded::Done) => self.body = Remaining::Done,
                    Ok(Decoded::NeedMore) | Err(_) => return false,
                },
            }
        }
    }

    fn poll_send_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = CONTINUE.get(self.continue_sent..).filter(|r| !r.is_empty()) {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.continue_sent += n;
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.continue_due = false;
        Poll::Ready(Ok(()))
    }
}

/// A write to the client that makes no progress for this long closes the
/// connection (nginx's `send_timeout`): a client that stops reading cannot
/// hold a response, its upstream body and its task forever. Over HTTP/2, a
/// stream whose client gives it no window for this long is reset.
pub(super) const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes and flushes `data`. The timer is armed only when the socket does
/// not take it all at once, which answers that fit its send buffer never do.
async fn send_bounded<IO: AsyncWrite + Unpin>(io: &mut IO, data: &[u8]) -> io::Result<()> {
    let mut written = 0;
    let mut step = |cx: &mut Context<'_>| -> Poll<io::Result<()>> {
        while let Some(rest) = data.get(written..).filter(|r| !r.is_empty()) {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            written += n;
        }
        Pin::new(&mut *io).poll_flush(cx)
    };
    if let Poll::Ready(result) = poll_fn(|cx| Poll::Ready(step(cx))).await {
        return result;
    }
    match tokio::time::timeout(SEND_TIMEOUT, poll_fn(step)).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Responses up to this size (head and body) go out in one write.
const GATHER: usize = 16 * 1024;

impl<IO: Transport> ReadBody for Conn<IO> {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.continue_due {
            if let Err(e) = ready!(self.poll_send_continue(cx)) {
                self.body = Remaining::Broken;
                return Poll::Ready(Some(Err(e.into())));
            }
        }
        loop {
            match &mut self.body {
                Remaining::Done => return Poll::Ready(None),
                Remaining::Broken => {
                    return Poll::Ready(Some(Err("the request body broke off".into())))
                }
                Remaining::Length(n) => {
                    if !self.buf.is_empty() {
                        let take =
                            usize::try_from(*n).map_or(self.buf.len(), |n| n.min(self.buf.len()));
                        let data = self.buf.split_to(take).freeze();
                        *n -= take as u64;
                        if *n == 0 {
                            self.body = Remaining::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Remaining::Chunked(decoder) => match decoder.decode(&mut self.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::Done) => {
                        self.body = Remaining::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => {
                        self.body = Remaining::Broken;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
            }
            match ready!(self.poll_read(cx)) {
                Ok(0) => {
                    self.body = Remaining::Broken;
                    return Poll::Ready(Some(Err(
                        "the client closed the connection mid-body".into()
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    self.body = Remaining::Broken;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.body, Remaining::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.body {
            Remaining::Done => SizeHint::with_exact(0),
            Remaining::Length(n) => SizeHint::with_exact(n),
            Remaining::Chunked(_) | Remaining::Broken => SizeHint::default(),
        }
    }
}

/// A stream with bytes already read from it put back in front.
pub(super) struct Rewind<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A read buffer grown past this (a large head) is freed, not pooled.
const POOL_MAX_CAPACITY: usize = 4 * READ_CHUNK;

thread_local! {
    static DATE: RefCell<CachedDate> = const { RefCell::new(CachedDate { second: 0, text: Vec::new() }) };
}

/// The `Date` header's value, formatted once a second per worker.
struct CachedDate {
    second: u64,
    text: Vec<u8>,
}

pub(super) fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.second != second || cached.text.is_empty() {
            cached.second = second;
            cached.text = httpdate::fmt_http_date(now).into_bytes();
        }
        f(&cached.text)
    })
}
