//! The one loop that runs an RTMP `Session` over a transport (anything AsyncRead +
//! AsyncWrite: a TCP socket, the in-memory replay of `super::replay`, TLS): it
//! reads bytes into the session, carries out its actions against the hub and the
//! authorizer, answers its questions, and writes what it says to send. For players it
//! also writes the hub's frames as RTMP chunks built once per frame. It moves bytes and
//! verdicts only; every protocol decision is the session's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::error::ConnError;
use super::handshake::HANDSHAKE_READ;
use super::messages::frame_chunks;
use super::session::{Action, Answer, Session};
use super::socket::{read_some, write_all_vectored, SharedTcp};
use crate::auth::Auth;
use crate::clients::{ClientHandle, ClientRole};
use crate::config::{ms, RtmpConfig};
use crate::fanout::{self, Handback, Ticket, Why};
use crate::hub::{Hub, Protocol, Publisher, SharedFrame, Subscription};

/// Most bytes read from the transport at once, after the handshake.
pub const READ_CHUNK: usize = 16 * 1024;

/// The read buffer a connection starts with: a player, which sends only a few small
/// commands and acknowledgements, never needs more; a publisher's buffer doubles up to
/// `READ_CHUNK` each time a read fills it. Thousands of players hold this, not 16 KB.
const FIRST_READ: usize = HANDSHAKE_READ;

/// The read buffer of a player once it plays: its acknowledgements and the odd command
/// are tens of bytes (a longer one takes a few reads, and a read that fills the buffer
/// doubles it as for a publisher).
const PLAYER_READ: usize = 256;

/// A session, its transport, and the hub handles its actions obtained.
pub struct Driver<T> {
    io: T,
    peer: SocketAddr,
    cfg: Arc<RtmpConfig>,
    hub: Hub,
    auth: Arc<Auth>,
    write_timeout: Duration,
    session: Session,
    /// The query of the last authorized request (a pull's hop list rides in it).
    query: String,
    publisher: Option<Publisher>,
    sub: Option<Subscription>,
    /// Its entry in the admin API's client list (none in the replay harness).
    client: Option<ClientHandle>,
    /// The name of the key or token the last authorization matched.
    credential: Option<String>,
    /// The chunks of the batch being written (kept for its capacity).
    out_parts: Vec<Bytes>,
    /// The plain TCP socket under `io`, which a fan-out loop can write for this player
    /// (none for TLS and the replay harness).
    fast: Option<Arc<tokio::net::TcpStream>>,
    /// Fan-out loops per stream when the fan-out is on (`hub.fanout`, `hub.fanout_loops`).
    fanout_loops: Option<usize>,
    /// Held while a fan-out loop writes this player's frames (`sub` is then in the loop).
    fan: Option<Ticket>,
    /// The loop gave the player back because the stream ended: say so, then close.
    stream_over: bool,
}

/// Runs a plain TCP connection: `run`, with the socket shared so that a fan-out loop can
/// write a player's frames.
pub async fn run_tcp(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    cfg: Arc<RtmpConfig>,
    hub: Hub,
    auth: Arc<Auth>,
    client: ClientHandle,
) {
    let socket = Arc::new(socket);
    let stop = client.kill_token().clone();
    let mut driver = Driver::new(SharedTcp(socket.clone()), peer, cfg, hub, auth);
    driver.client = Some(client);
    driver.fast = Some(socket);
    if driver.run(&stop).await.is_ok() {
        tracing::debug!("connection closed");
    }
}

/// Runs a connection (TCP, or TLS over TCP) to its end and logs why it ended. It stops
/// when the client's kill token fires: at server shutdown, or at a kick, which the peer is
/// told about first.
pub async fn run<T: AsyncRead + AsyncWrite + Unpin>(
    socket: T,
    peer: SocketAddr,
    cfg: Arc<RtmpConfig>,
    hub: Hub,
    auth: Arc<Auth>,
    client: ClientHandle,
) {
    let stop = client.kill_token().clone();
    let mut driver = Driver::new(socket, peer, cfg, hub, auth);
    driver.client = Some(client);
    if driver.run(&stop).await.is_ok() {
        tracing::debug!("connection closed");
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    pub fn new(io: T, peer: SocketAddr, cfg: Arc<RtmpConfig>, hub: Hub, auth: Arc<Auth>) -> Self {
        let hub_cfg = hub.config();
        let write_timeout = ms(hub_cfg.viewer_write_timeout_ms);
        let fanout_loops = hub_cfg.fanout.then_some(hub_cfg.fanout_loops);
        let session = Session::new(cfg.clone(), peer.ip());
        Self {
            io,
            peer,
            cfg,
            hub,
            auth,
            write_timeout,
            session,
            query: String::new(),
            publisher: None,
            sub: None,
            client: None,
            credential: None,
            out_parts: Vec::new(),
            fast: None,
            fanout_loops,
            fan: None,
            stream_over: false,
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The stream this connection publishes, once its publish was accepted.
    pub fn publisher(&self) -> Option<&Publisher> {
        self.publisher.as_ref()
    }

    pub fn is_playing(&self) -> bool {
        self.sub.is_some() || self.fan.is_some()
    }

    /// Runs the connection until the peer leaves (`Ok`), `shutdown`, or a close (`Err`,
    /// counted in the metrics when it refuses the peer, and logged once).
    pub async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), ConnError> {
        // A transfer buffer only: partial messages live in the session, bounded by its limits.
        let mut read_buf = vec![0u8; FIRST_READ];
        let Err((e, refused)) = self.serve(shutdown, &mut read_buf).await else {
            return Ok(());
        };
        // Counted and logged before any drain, so they do not wait on the client.
        if let Some(reason) = e.refusal_reason() {
            self.hub.metrics().refused(reason);
        }
        match e {
            ConnError::Io(_) => tracing::debug!(error = %e, "connection closed"),
            _ => tracing::warn!(error = %e, "connection closed"),
        }
        // The socket's writes come back from a fan-out loop before anything else is written.
        let _ = self.recall().await;
        // The stream is let go before the drain: a refused or kicked publisher's viewers
        // start their grace period now, not when the client stops sending.
        self.publisher = None;
        self.sub = None;
        if refused {
            self.drain(&e, &mut read_buf).await;
        }
        Err(e)
    }

    /// The connection's loop. A close the session decided is marked `true`: the peer is
    /// owed the chance to read what was sent before it.
    async fn serve(
        &mut self,
        shutdown: &CancellationToken,
        read_buf: &mut Vec<u8>,
    ) -> Result<(), (ConnError, bool)> {
        let mut batch: Vec<Arc<SharedFrame>> = Vec::new();
        let idle = ms(self.cfg.idle_timeout_ms);
        let handshake_limit = ms(self.cfg.handshake_timeout_ms);
        let handshake_deadline = tokio::time::Instant::now() + handshake_limit;
        // Built and registered once, and polled only when the token woke it: a fresh
        // `cancelled()` each turn cost lock round trips per viewer per frame.
        let mut stop = crate::stop::StopSignal::new(shutdown.clone());
        let mut kick_sent = false;
        let mut slimmed = false;
        let mut turns = 0u32;
        loop {
            if let Err(e) = self.act().await {
                let decided = !matches!(e, ConnError::Io(_) | ConnError::WriteTimeout(_));
                return Err((e, decided));
            }
            if !self.session.handshake_done() {
                let len = HANDSHAKE_READ.min(read_buf.len());
                let read = self.io.read(&mut read_buf[..len]);
                let n = tokio::time::timeout_at(handshake_deadline, read)
                    .await
                    .map_err(|_| (ConnError::HandshakeTimeout(handshake_limit), false))?
                    .map_err(|e| (e.into(), false))?;
                if n == 0 {
                    let e = ConnError::Handshake("peer closed during handshake".into());
                    return Err((e, false));
                }
                self.session.push(&read_buf[..n]);
                continue;
            }
            if self.stream_over {
                let bye = self.session.stream_ended();
                self.write(bye).await.map_err(|e| (e, false))?;
                return Ok(());
            }
            self.offer_to_fanout();
            if !slimmed && self.is_playing() {
                slimmed = true;
                self.session.release_spare_capacity();
                *read_buf = vec![0; PLAYER_READ];
            }
            // The select below reaches the stop only when frames and input are both
            // waiting; a peer that always has one ready (a backlogged viewer, a publisher
            // sending without pause) still sees a kick or shutdown within 64 turns.
            turns = turns.wrapping_add(1);
            let stopped = if turns.is_multiple_of(64) && shutdown.is_cancelled() {
                true
            } else {
                let playing = self.sub.is_some();
                let attached = self.fan.is_some();
                // In order, and the first ready branch wins: a viewer woken by a frame
                // polls neither its socket's readiness nor the stop.
                tokio::select! {
                    biased;
                    r = crate::hub::next_batch_of(&mut self.sub, &mut batch), if playing => {
                        if r.is_err() {
                            // Stream over: tell the player, then close.
                            let bye = self.session.stream_ended();
                            self.write(bye).await.map_err(|e| (e, false))?;
                            return Ok(());
                        }
                        if let Some(codec) = self.unannounced_codec(&batch) {
                            // Refused before any of its bytes go out; `act` closes and drains.
                            self.sub = None;
                            batch.clear();
                            self.session.play_refused(codec);
                            continue;
                        }
                        self.write_frames(&batch).await.map_err(|e| (e, false))?;
                        batch.clear();
                        false
                    }
                    back = fanout::returned(&mut self.fan), if attached => {
                        self.fan = None;
                        match back {
                            Some(back) => self.take_back(back).await.map_err(|e| (e, false))?,
                            // The loop is gone (it only ends with its stream).
                            None => self.stream_over = true,
                        }
                        false
                    }
                    r = read_some(&mut self.io, read_buf, (!playing && !attached).then_some(idle)) => {
                        let n = r.map_err(|e| (e, false))?;
                        if n == 0 {
                            return Ok(());
                        }
                        self.count_bytes(n);
                        self.session.push(&read_buf[..n]);
                        if n == read_buf.len() && n < READ_CHUNK {
                            read_buf.resize(n * 2, 0);
                        }
                        false
                    }
                    _ = &mut stop => true,
                }
            };
            if stopped {
                let kicked = self.client.as_ref().is_some_and(|c| c.kicked());
                if kicked && !kick_sent && !self.session.is_closed() {
                    // The status goes out and `act` closes on the next turn.
                    kick_sent = true;
                    self.session.kick();
                    continue;
                }
                return Ok(());
            }
        }
    }

    /// Carries out every action the session has now; `Err` when it says to close.
    async fn act(&mut self) -> Result<(), ConnError> {
        while let Some(action) = self.session.poll() {
            match action {
                Action::Send(bytes) => {
                    // Control messages go out between whole frames, by this task.
                    self.recall().await?;
                    self.write(bytes).await?
                }
                Action::Authorize(access) => {
                    // Boxed, as are the other once-per-connection awaits below: held inline,
                    // the largest of them sized every connection's task (a player's too).
                    let verdict = Box::pin(self.auth.check_named(&access)).await;
                    self.credential = verdict.as_ref().ok().cloned().flatten();
                    self.query = access.param.clone();
                    self.session.answer(Answer::Authorized(verdict.map(|_| ())));
                }
                Action::Publish(key) => {
                    let cluster = self.hub.sources().map(|s| s.cluster().clone());
                    let admitted = match &cluster {
                        Some(c) => Box::pin(c.admit_publish(&key)).await,
                        None => Ok(()),
                    };
                    let verdict =
                        match admitted.and_then(|()| self.hub.publish(key.clone(), self.peer)) {
                            Ok(p) => {
                                tracing::Span::current()
                                    .record("stream", tracing::field::display(&key));
                                if let Some(c) = &cluster {
                                    c.published(p.stream(), &self.query);
                                }
                                self.publisher = Some(p);
                                self.started(ClientRole::Publisher, &key);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        };
                    self.session.answer(Answer::Published(verdict));
                }
                Action::Play { key, .. } => {
                    Box::pin(self.hub.pull_if_needed(&key, &self.query)).await;
                    let verdict = match self.hub.subscribe(&key, Protocol::Rtmp) {
                        Ok(sub) => {
                            tracing::Span::current()
                                .record("stream", tracing::field::display(&key));
                            self.sub = Some(sub);
                            self.started(ClientRole::Viewer, &key);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    };
                    self.session.answer(Answer::Playing(verdict));
                }
                Action::Received(n) => {
                    if let Some(p) = &self.publisher {
                        p.count_in(n);
                    }
                }
                Action::Config(c) => {
                    if let Some(Err(e)) = self.publisher.as_ref().map(|p| p.config(c)) {
                        self.session.media_refused(e);
                    }
                }
                Action::Media(f) => {
                    if let Some(Err(e)) = self.publisher.as_ref().map(|p| p.frame(f)) {
                        self.session.media_refused(e);
                    }
                }
                Action::Metadata(s) => {
                    if let Some(Err(e)) = self.publisher.as_ref().map(|p| p.metadata(s)) {
                        self.session.media_refused(e);
                    }
                }
                Action::Stopped => {
                    self.recall().await?;
                    // Dropping the publisher starts the stream's grace period.
                    self.publisher = None;
                    self.sub = None;
                }
                Action::Close(e) => {
                    let _ = self.recall().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// After a refusal (its status already written): end our side, so the client reads
    /// the status and then the end of the stream, and read what it still sends for at
    /// most `refusal_drain_ms`. Closing with its input unread would make the kernel
    /// answer with a reset, and the client would see that instead of the status.
    async fn drain(&mut self, e: &ConnError, buf: &mut [u8]) {
        let limit = ms(self.cfg.refusal_drain_ms);
        if limit.is_zero() {
            return;
        }
        tracing::debug!(error = %e, ?limit, "draining the refused client's input");
        let deadline = tokio::time::Instant::now() + limit;
        let drain = async {
            let _ = self.io.shutdown().await;
            while let Ok(n) = self.io.read(buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, drain).await;
    }

    fn started(&self, role: ClientRole, key: &crate::hub::StreamKey) {
        if let Some(c) = &self.client {
            c.started(role, key.clone(), self.credential.clone());
        }
    }

    fn count_bytes(&self, n: usize) {
        if let Some(c) = &self.client {
            c.add_bytes(n);
        }
    }

    async fn write(&mut self, bytes: Bytes) -> Result<(), ConnError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let n = bytes.len();
        write_all_vectored(&mut self.io, &[bytes], self.write_timeout).await?;
        self.count_bytes(n);
        Ok(())
    }

    fn unannounced_codec(&self, batch: &[Arc<SharedFrame>]) -> Option<onair_shared::Codec> {
        unannounced_codec(self.session.client_caps(), batch)
    }

    /// Hands a player on message stream 1 over a plain TCP socket to its stream's fan-out
    /// loops, once everything the session had to send is written. A loop that cannot take
    /// it now leaves it with this task.
    fn offer_to_fanout(&mut self) {
        let (None, Some(loops), Some(sock), Some(1)) = (
            &self.fan,
            self.fanout_loops,
            &self.fast,
            self.session.playing(),
        ) else {
            return;
        };
        let Some(sub) = self.sub.take() else {
            return;
        };
        let viewer = fanout::Viewer {
            sub,
            sock: sock.clone(),
            format: fanout::Format::Rtmp {
                caps: self.session.client_caps().clone(),
                chunk_size: self.cfg.out_chunk_size,
            },
            client: self.client.as_ref().map(|c| c.byte_counter()),
            write_timeout: self.write_timeout,
        };
        match fanout::attach(viewer, loops) {
            Ok(ticket) => self.fan = Some(ticket),
            Err(viewer) => self.sub = Some(viewer.sub),
        }
    }

    /// Takes the player back from its fan-out loop, if one holds it.
    async fn recall(&mut self) -> Result<(), ConnError> {
        let Some(ticket) = self.fan.take() else {
            return Ok(());
        };
        match ticket.recall().await {
            Some(back) => self.take_back(back).await,
            None => {
                self.stream_over = true;
                Ok(())
            }
        }
    }

    /// A player given back by its loop: the rest of a frame the socket took only part
    /// of goes out first, then this task carries on as the loop's reason says.
    async fn take_back(&mut self, back: Handback) -> Result<(), ConnError> {
        let Handback { sub, unsent, why } = back;
        match why {
            Why::WriteTimeout(limit) => return Err(ConnError::WriteTimeout(limit)),
            Why::Io(e) => return Err(e.into()),
            _ => {}
        }
        if !unsent.is_empty() {
            let total: usize = unsent.iter().map(|p| p.len()).sum();
            write_all_vectored(&mut self.io, &unsent, self.write_timeout).await?;
            sub.stream().add_out(total);
            self.count_bytes(total);
        }
        match why {
            Why::Recalled => self.sub = Some(sub),
            Why::Ended => self.stream_over = true,
            Why::Refused(codec) => self.session.play_refused(codec),
            Why::WriteTimeout(_) | Why::Io(_) => {}
        }
        Ok(())
    }

    async fn write_frames(&mut self, batch: &[Arc<SharedFrame>]) -> Result<(), ConnError> {
        let (Some(_), Some(stream_id)) = (&self.sub, self.session.playing()) else {
            return Ok(());
        };
        let chunk_size = self.cfg.out_chunk_size;
        // Players on message stream 1 (all real ones) share chunks built once per frame.
        // One vector kept across batches: no allocation per frame.
        let mut parts = std::mem::take(&mut self.out_parts);
        parts.clear();
        parts.extend(
            batch
                .iter()
                .map(|f| {
                    if stream_id == 1 {
                        f.rtmp_chunks(|fr| frame_chunks(fr, 1, chunk_size)).clone()
                    } else {
                        frame_chunks(f, stream_id, chunk_size)
                    }
                })
                .filter(|p| !p.is_empty()),
        );
        let total: usize = parts.iter().map(|p| p.len()).sum();
        write_all_vectored(&mut self.io, &parts, self.write_timeout).await?;
        parts.clear();
        self.out_parts = parts;
        if let Some(sub) = &self.sub {
            sub.stream().add_out(total);
        }
        self.count_bytes(total);
        Ok(())
    }
}

/// A codec in `batch` this player did not announce it decodes or forwards (by its
/// connect's `fourCcList` or info-map flags). H.264, AAC and MP3 go to every player in
/// legacy form, and so does opaque legacy audio.
pub fn unannounced_codec(
    caps: &onair_shared::eflv::connect::ClientCaps,
    batch: &[Arc<SharedFrame>],
) -> Option<onair_shared::Codec> {
    use onair_shared::Codec;
    batch
        .iter()
        .filter_map(|f| f.codec_config().map(|c| c.codec))
        .find(|&c| {
            matches!(
                c,
                Codec::Hevc | Codec::Av1 | Codec::Vp9 | Codec::Opus | Codec::Flac
            ) && !caps.accepts(c)
        })
}
