//! One RTMP connection: handshake, then bytes through the chunk decoder; commands go
//! to rml_rtmp's sans-IO session, media goes straight to the hub (publishers) or comes
//! from a hub subscription as pre-built shared chunks (players). This task only moves
//! bytes; every decision about bytes lives in the pure modules it calls.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use onair_shared::flv::{TAG_AUDIO, TAG_VIDEO};
use onair_shared::metadata::{parse_script, AmfError};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::chunk::{encode_message, ChunkDecoder, ChunkError, ChunkLimits, RtmpMessage};
use super::messages::*;
use crate::auth::{Access, Action, Auth, Denied};
use crate::clients::{ClientHandle, ClientRole};
use crate::config::{ms, RtmpConfig};
use crate::hub::parse_stream_name;
use crate::hub::{Hub, Protocol, Publisher, PushError, SharedFrame, StreamKey, Subscription};

/// Why a connection was closed; each is logged once with the peer.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("no data for {0:?}")]
    Idle(Duration),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("RTMP session: {0}")]
    Session(String),
    /// A library panicked on peer input; caught, so only this connection ends.
    #[error("{0} panicked on this input")]
    Panicked(&'static str),
    #[error("malformed AMF0 command or data: {0}")]
    Amf(#[from] AmfError),
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("{kind} message of {len} bytes exceeds max_command_size {max}")]
    CommandTooLarge {
        kind: &'static str,
        len: usize,
        max: u32,
    },
    #[error("publish refused: {0}")]
    PublishRefused(String),
    #[error("{action:?} refused: {denied}")]
    Unauthorized { action: Action, denied: Denied },
    #[error("play refused: {0}")]
    PlayRefused(String),
    #[error("publisher sent bad media: {0}")]
    Media(#[from] PushError),
    #[error("viewer accepted no data for {0:?}")]
    WriteTimeout(Duration),
    #[error("kicked by an operator")]
    Kicked,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

impl ConnError {
    /// The metrics label when this close is a refusal of the peer; `None` for plain closes.
    pub fn refusal_reason(&self) -> Option<&'static str> {
        Some(match self {
            ConnError::HandshakeTimeout(_) => "handshake_timeout",
            ConnError::Handshake(_) => "bad_handshake",
            ConnError::Idle(_) => "idle_timeout",
            ConnError::Chunk(_) | ConnError::CommandTooLarge { .. } => "rtmp_limit",
            ConnError::Amf(_) | ConnError::UnknownCommand(_) | ConnError::Session(_) => {
                "bad_command"
            }
            ConnError::Panicked(_) => "peer_input_panic",
            ConnError::PublishRefused(_) => "publish_refused",
            ConnError::PlayRefused(_) => "play_refused",
            ConnError::Unauthorized { denied, .. } => denied.reason(),
            ConnError::Media(_) => "bad_media",
            ConnError::WriteTimeout(_) => "viewer_write_timeout",
            ConnError::Kicked => "kicked",
            ConnError::Io(_) => return None,
        })
    }
}

/// A publish or play waiting for its authorization verdict.
#[derive(Debug, Clone)]
pub struct PendingAccess {
    pub access: Access,
    request_id: u32,
    key: StreamKey,
    /// The message stream of a play request.
    play_stream_id: Option<u32>,
}

enum Role {
    Undecided,
    Publishing(Publisher),
    Playing { sub: Subscription, stream_id: u32 },
}

pub struct Connection {
    socket: TcpStream,
    auth: Arc<Auth>,
    /// Its entry in the admin API's client list; its kill token stops `serve`.
    client: ClientHandle,
    write_timeout: Duration,
    st: ConnState,
}

/// Everything a connection knows and decides, without its socket: received bytes go in
/// with `push`, bytes to send come out of `take_output`, and `take_close` says whether
/// to close after sending them. `Connection` drives it over TCP, `super::replay` over a
/// byte string (fuzzing), so both run exactly this code.
pub struct ConnState {
    peer: SocketAddr,
    cfg: Arc<RtmpConfig>,
    hub: Hub,
    session: ServerSession,
    decoder: ChunkDecoder,
    /// Bytes to send: rml_rtmp responses and our own messages, in order.
    out: BytesMut,
    role: Role,
    app: Option<String>,
    peer_window_ack: Option<u32>,
    acked: u64,
    close_after_flush: Option<ConnError>,
    /// Query of the connect URL (`rtmp://host/app?key=…`), added to each stream's.
    app_query: String,
    pending: Option<PendingAccess>,
}

/// Most bytes read from the socket at once, after the handshake.
pub const READ_CHUNK: usize = 16 * 1024;
/// Longest a kicked client's socket stays open for it to read why.
const KICK_LINGER: Duration = Duration::from_secs(1);
/// Most bytes read at once during the handshake.
pub const HANDSHAKE_READ: usize = 4096;

/// Runs a connection to its end and logs why it ended. It stops when the client's kill
/// token fires (server shutdown, or a kick, which the peer is told about first).
pub async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    cfg: Arc<RtmpConfig>,
    hub: Hub,
    auth: Arc<Auth>,
    client: ClientHandle,
) {
    let _ = socket.set_nodelay(true);
    let metrics = hub.metrics().clone();
    let stop = client.kill_token().clone();
    let result = match Connection::start(socket, peer, cfg, hub, auth, client).await {
        Ok(mut conn) => match conn.serve(stop).await {
            Ok(()) if conn.client.kicked() => Err(conn.say_kicked().await),
            r => r,
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => tracing::debug!("connection closed"),
        Err(e) => {
            if let Some(reason) = e.refusal_reason() {
                metrics.refused(reason);
            }
            log_close(&e);
        }
    }
}

fn log_close(e: &ConnError) {
    match e {
        ConnError::Io(_) => tracing::debug!(error = %e, "connection closed"),
        _ => tracing::warn!(error = %e, "connection closed"),
    }
}

impl Connection {
    async fn start(
        mut socket: TcpStream,
        peer: SocketAddr,
        cfg: Arc<RtmpConfig>,
        hub: Hub,
        auth: Arc<Auth>,
        client: ClientHandle,
    ) -> Result<Self, ConnError> {
        let limit = ms(cfg.handshake_timeout_ms);
        let remaining = tokio::time::timeout(limit, handshake(&mut socket))
            .await
            .map_err(|_| ConnError::HandshakeTimeout(limit))??;
        let write_timeout = ms(hub.config().viewer_write_timeout_ms);
        let mut st = ConnState::new(peer, cfg, hub)?;
        st.push(&remaining);
        Ok(Self {
            socket,
            auth,
            client,
            write_timeout,
            st,
        })
    }

    /// Tells a kicked publisher or player why it is being closed. Its stream is let go at
    /// once (a publisher's viewers start their grace period); the socket stays open, input
    /// discarded, for at most `KICK_LINGER`, because an encoder only reads between its
    /// writes and would otherwise hit the closed socket before it reads the status.
    async fn say_kicked(&mut self) -> ConnError {
        let (stream_id, code) = match self.st.role {
            Role::Playing { stream_id, .. } => (stream_id, "NetStream.Play.Stop"),
            // rml_rtmp's createStream hands out stream 1 to a connection's first stream.
            _ => (1, "NetStream.Publish.Rejected"),
        };
        self.st.role = Role::Undecided;
        let msg = on_status(
            stream_id,
            "error",
            code,
            "kicked by the server operator",
            self.st.cfg.out_chunk_size,
        );
        self.st.out.extend_from_slice(&msg);
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(KICK_LINGER, async {
            self.flush().await?;
            while self.socket.read(&mut buf).await? > 0 {}
            Ok::<(), ConnError>(())
        })
        .await;
        ConnError::Kicked
    }

    async fn serve(&mut self, shutdown: CancellationToken) -> Result<(), ConnError> {
        // A transfer buffer only: partial messages live in the decoder, bounded by its limits.
        let mut read_buf = vec![0u8; READ_CHUNK].into_boxed_slice();
        let mut batch: Vec<Arc<SharedFrame>> = Vec::new();
        let idle = ms(self.st.cfg.idle_timeout_ms);
        loop {
            self.st.process_input()?;
            if let Some(p) = self.st.pending() {
                // Publish.Start (or the play) waits for every check, the hook included.
                let verdict = self.auth.check_named(&p.access).await;
                let credential = verdict.as_ref().ok().cloned().flatten();
                self.st.resolve(verdict.map(|_| ()))?;
                if let Some((role, key)) = self.st.started_as() {
                    self.client.started(role, key, credential);
                }
                continue;
            }
            self.flush().await?;
            if let Some(e) = self.st.take_close() {
                return Err(e);
            }
            let playing = self.st.is_playing();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = read_some(&mut self.socket, &mut read_buf, (!playing).then_some(idle)) => {
                    let n = r?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.client.add_bytes(n);
                    self.st.push(&read_buf[..n]);
                }
                r = next_frames(&mut self.st.role, &mut batch), if playing => {
                    if r.is_err() {
                        // Stream over: tell the player, then close.
                        if let Role::Playing { stream_id, .. } = self.st.role {
                            self.st.out.extend_from_slice(&on_status(stream_id, "status", "NetStream.Play.UnpublishNotify", "stream ended", self.st.cfg.out_chunk_size));
                        }
                        self.flush().await?;
                        return Ok(());
                    }
                    self.write_frames(&batch).await?;
                    batch.clear();
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        let data = self.st.take_output();
        if data.is_empty() {
            return Ok(());
        }
        write_all_vectored(&mut self.socket, &[data], self.write_timeout).await
    }

    async fn write_frames(&mut self, batch: &[Arc<SharedFrame>]) -> Result<(), ConnError> {
        let Role::Playing { sub, stream_id } = &self.st.role else {
            return Ok(());
        };
        let chunk_size = self.st.cfg.out_chunk_size;
        let stream_id = *stream_id;
        // Players on message stream 1 (all real ones) share chunks built once per frame.
        let parts: Vec<Bytes> = batch
            .iter()
            .map(|f| {
                if stream_id == 1 {
                    f.rtmp_chunks(|fr| frame_chunks(fr, 1, chunk_size)).clone()
                } else {
                    frame_chunks(&f.frame, stream_id, chunk_size)
                }
            })
            .collect();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        write_all_vectored(&mut self.socket, &parts, self.write_timeout).await?;
        sub.stream().add_out(total);
        self.client.add_bytes(total);
        Ok(())
    }
}

impl ConnState {
    /// The state right after the handshake: rml_rtmp's session created and its opening
    /// messages (window size, peer bandwidth, chunk size) queued for sending.
    pub fn new(peer: SocketAddr, cfg: Arc<RtmpConfig>, hub: Hub) -> Result<Self, ConnError> {
        let mut session_cfg = ServerSessionConfig::new();
        session_cfg.chunk_size = cfg.out_chunk_size;
        let (session, initial) =
            ServerSession::new(session_cfg).map_err(|e| ConnError::Session(format!("{e:?}")))?;
        let decoder = ChunkDecoder::new(ChunkLimits {
            max_chunk_size: cfg.max_chunk_size,
            max_message_size: cfg.max_message_size,
            max_chunk_streams: cfg.max_chunk_streams,
        });
        let mut st = Self {
            peer,
            cfg,
            hub,
            session,
            decoder,
            out: BytesMut::new(),
            role: Role::Undecided,
            app: None,
            peer_window_ack: None,
            acked: 0,
            close_after_flush: None,
            app_query: String::new(),
            pending: None,
        };
        st.apply(initial)?;
        Ok(st)
    }

    /// Received bytes; `process_input` acts on them.
    pub fn push(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
    }

    /// Bytes to send, in order, since the last call.
    pub fn take_output(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// Set once the connection must close after sending its output (a refusal).
    pub fn take_close(&mut self) -> Option<ConnError> {
        self.close_after_flush.take()
    }

    /// The stream this connection publishes, once its publish was accepted.
    pub fn publisher(&self) -> Option<&Publisher> {
        match &self.role {
            Role::Publishing(p) => Some(p),
            _ => None,
        }
    }

    /// A publish or play waiting for `resolve`; input stays unread until then.
    pub fn pending(&self) -> Option<PendingAccess> {
        self.pending.clone()
    }

    /// Completes the pending publish or play with the authorization verdict.
    pub fn resolve(&mut self, verdict: Result<(), Denied>) -> Result<(), ConnError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        match (verdict, p.play_stream_id) {
            (Ok(()), None) => self.start_publish(p.request_id, p.key),
            (Ok(()), Some(stream_id)) => self.start_play(p.request_id, p.key, stream_id),
            (Err(denied), play) => {
                tracing::warn!(stream = %p.key, reason = denied.reason(), "refused: {denied}");
                let (code, action) = if play.is_some() {
                    ("NetStream.Play.Unauthorized", Action::Play)
                } else {
                    ("NetStream.Publish.Unauthorized", Action::Publish)
                };
                self.reject(
                    p.request_id,
                    code,
                    denied.to_string(),
                    ConnError::Unauthorized { action, denied },
                )
            }
        }
    }

    fn request_access(
        &mut self,
        request_id: u32,
        key: StreamKey,
        action: Action,
        query: Option<String>,
        play_stream_id: Option<u32>,
    ) {
        let param = [query.unwrap_or_default(), self.app_query.clone()]
            .into_iter()
            .filter(|q| !q.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        self.pending = Some(PendingAccess {
            access: Access {
                action,
                protocol: "rtmp",
                app: key.app.clone(),
                stream: key.name.clone(),
                client_ip: self.peer.ip(),
                param,
            },
            request_id,
            key,
            play_stream_id,
        });
    }

    /// What this connection does once its publish or play started, for the client list.
    pub fn started_as(&self) -> Option<(ClientRole, StreamKey)> {
        match &self.role {
            Role::Publishing(p) => Some((ClientRole::Publisher, p.key().clone())),
            Role::Playing { sub, .. } => Some((ClientRole::Viewer, sub.stream().key.clone())),
            Role::Undecided => None,
        }
    }

    pub fn is_playing(&self) -> bool {
        matches!(self.role, Role::Playing { .. })
    }

    /// Decodes every complete message and acts on it.
    pub fn process_input(&mut self) -> Result<(), ConnError> {
        while self.pending.is_none() {
            let Some(msg) = self.decoder.next_message()? else {
                break;
            };
            self.on_message(msg)?;
            if self.close_after_flush.is_some() {
                return Ok(());
            }
        }
        if let Some(window) = self.peer_window_ack {
            let total = self.decoder.bytes_received();
            if total - self.acked >= window as u64 {
                self.acked = total;
                self.out
                    .extend_from_slice(&acknowledgement(total, self.cfg.out_chunk_size));
            }
        }
        Ok(())
    }

    fn on_message(&mut self, msg: RtmpMessage) -> Result<(), ConnError> {
        match msg.type_id {
            TYPE_VIDEO | TYPE_AUDIO => self.on_media(msg.type_id, msg.timestamp, msg.payload),
            TYPE_AGGREGATE => {
                for tag in split_aggregate(&msg.payload, msg.timestamp) {
                    if tag.tag_type == TAG_VIDEO || tag.tag_type == TAG_AUDIO {
                        self.on_media(tag.tag_type, tag.timestamp, tag.body)?;
                    }
                }
                Ok(())
            }
            TYPE_AMF0_DATA => self.on_data(msg.payload),
            TYPE_AMF0_COMMAND | TYPE_AMF3_COMMAND => self.on_command(msg),
            TYPE_WINDOW_ACK_SIZE => {
                if let Some(b) = msg.payload.get(..4) {
                    let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    self.peer_window_ack = (size > 0).then_some(size);
                }
                Ok(())
            }
            TYPE_USER_CONTROL | TYPE_ACK | TYPE_SET_PEER_BANDWIDTH => {
                self.feed_session(&msg, &msg.payload)
            }
            // Set Chunk Size and Abort were applied by the decoder; AMF3 data and others are not used.
            _ => Ok(()),
        }
    }

    fn on_media(&mut self, type_id: u8, ts: u32, payload: Bytes) -> Result<(), ConnError> {
        let Role::Publishing(publisher) = &self.role else {
            return Ok(());
        };
        // A small payload may share a large read buffer; a copy keeps the GOP cache from
        // pinning whole buffers for a few bytes each.
        let payload = if payload.len() <= 16 * 1024 {
            Bytes::copy_from_slice(&payload)
        } else {
            payload
        };
        let r = if type_id == TAG_VIDEO {
            publisher.video(ts, payload)
        } else {
            publisher.audio(ts, payload)
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let stream_id = 1;
                self.out.extend_from_slice(&on_status(
                    stream_id,
                    "error",
                    "NetStream.Publish.Failed",
                    &e.to_string(),
                    self.cfg.out_chunk_size,
                ));
                self.close_after_flush = Some(ConnError::Media(e));
                Ok(())
            }
        }
    }

    fn on_data(&mut self, payload: Bytes) -> Result<(), ConnError> {
        self.check_command_size("data", payload.len())?;
        let Role::Publishing(publisher) = &self.role else {
            return Ok(());
        };
        match parse_script(&payload, self.cfg.max_amf_depth) {
            Ok(script) => {
                tracing::debug!(metadata = ?script.metadata, "metadata");
                publisher.metadata(script)?;
                Ok(())
            }
            // Other script data (onTextData, onCuePoint, |RtmpSampleAccess) is not relayed.
            Err(AmfError::NotMetadata) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn check_command_size(&self, kind: &'static str, len: usize) -> Result<(), ConnError> {
        if len > self.cfg.max_command_size as usize {
            return Err(ConnError::CommandTooLarge {
                kind,
                len,
                max: self.cfg.max_command_size,
            });
        }
        Ok(())
    }

    fn on_command(&mut self, msg: RtmpMessage) -> Result<(), ConnError> {
        self.check_command_size("command", msg.payload.len())?;
        // AMF3 commands carry one format byte, then AMF0.
        let amf0 = if msg.type_id == TYPE_AMF3_COMMAND {
            msg.payload.slice(msg.payload.len().min(1)..)
        } else {
            msg.payload.clone()
        };
        match check_command(&amf0, self.cfg.max_amf_depth)? {
            CommandCheck::Forward(bytes) => {
                let fwd = RtmpMessage {
                    type_id: TYPE_AMF0_COMMAND,
                    payload: bytes.clone(),
                    ..msg
                };
                self.feed_session(&fwd, &bytes)
            }
            CommandCheck::Ignore(name) => {
                tracing::debug!(command = %name, "ignored");
                Ok(())
            }
            CommandCheck::Unknown {
                name,
                transaction_id,
            } => {
                self.out.extend_from_slice(&command_error(
                    transaction_id,
                    "NetConnection.Call.Failed",
                    "unknown command",
                    self.cfg.out_chunk_size,
                ));
                self.close_after_flush = Some(ConnError::UnknownCommand(name));
                Ok(())
            }
        }
    }

    /// Re-chunks one message for rml_rtmp at its initial chunk size (it never sees the
    /// peer's Set Chunk Size) and acts on what it returns.
    fn feed_session(&mut self, msg: &RtmpMessage, payload: &[u8]) -> Result<(), ConnError> {
        let mut bytes = BytesMut::with_capacity(payload.len() + 64);
        encode_message(
            &mut bytes,
            msg.csid.max(3),
            msg.type_id,
            msg.stream_id,
            0,
            payload,
            128,
        );
        let session = &mut self.session;
        let results = catch_unwind(AssertUnwindSafe(|| session.handle_input(&bytes)))
            .map_err(|_| ConnError::Panicked("rml_rtmp's session"))?
            .map_err(|e| ConnError::Session(format!("{e:?}")))?;
        self.apply(results)
    }

    fn apply(&mut self, results: Vec<ServerSessionResult>) -> Result<(), ConnError> {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => self.out.extend_from_slice(&p.bytes),
                ServerSessionResult::RaisedEvent(e) => self.on_event(e)?,
                ServerSessionResult::UnhandleableMessageReceived(p) => {
                    tracing::debug!(type_id = p.type_id, "message not handled");
                }
            }
        }
        Ok(())
    }

    fn accept(&mut self, request_id: u32) -> Result<(), ConnError> {
        let results = self
            .session
            .accept_request(request_id)
            .map_err(|e| ConnError::Session(format!("{e:?}")))?;
        self.apply(results)
    }

    fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        reason: String,
        err: ConnError,
    ) -> Result<(), ConnError> {
        let results = self
            .session
            .reject_request(request_id, code, &reason)
            .map_err(|e| ConnError::Session(format!("{e:?}")))?;
        self.apply(results)?;
        self.close_after_flush = Some(err);
        Ok(())
    }

    fn on_event(&mut self, event: ServerSessionEvent) -> Result<(), ConnError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                // `rtmp://host/app?key=…` arrives as app "app?key=…"; the query is kept aside
                // (and never logged).
                let (app_name, app_query) = match app_name.split_once('?') {
                    Some((a, q)) => (a.to_string(), q.to_string()),
                    None => (app_name, String::new()),
                };
                tracing::debug!(app = %app_name, "connect");
                self.app_query = app_query;
                if app_name.is_empty() || app_name.len() > 200 || app_name.contains(['/', '?']) {
                    let reason = format!("invalid app name {app_name:?}");
                    return self.reject(
                        request_id,
                        "NetConnection.Connect.Rejected",
                        reason.clone(),
                        ConnError::PublishRefused(reason),
                    );
                }
                self.app = Some(app_name);
                self.accept(request_id)
            }
            ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => {
                self.accept(request_id)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.on_publish(request_id, app_name, stream_key),
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                app_name,
                stream_key,
                stream_id,
                ..
            } => self.on_play(request_id, app_name, stream_key, stream_id),
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if matches!(self.role, Role::Publishing(_)) {
                    tracing::info!("publisher finished");
                    self.role = Role::Undecided;
                }
                Ok(())
            }
            ServerSessionEvent::PlayStreamFinished { .. } => {
                self.role = Role::Undecided;
                Ok(())
            }
            ServerSessionEvent::UnhandleableAmf0Command { command_name, .. } => {
                tracing::debug!(command = %command_name, "command not handled");
                Ok(())
            }
            other => {
                tracing::trace!(event = ?other, "session event");
                Ok(())
            }
        }
    }

    fn on_publish(
        &mut self,
        request_id: u32,
        app: String,
        raw_key: String,
    ) -> Result<(), ConnError> {
        if !matches!(self.role, Role::Undecided) {
            let reason = "this connection already publishes or plays".to_string();
            return self.reject(
                request_id,
                "NetStream.Publish.BadName",
                reason.clone(),
                ConnError::PublishRefused(reason),
            );
        }
        let (name, query) = match parse_stream_name(&raw_key) {
            Ok(x) => x,
            Err(reason) => {
                return self.reject(
                    request_id,
                    "NetStream.Publish.BadName",
                    reason.into(),
                    ConnError::PublishRefused(reason.into()),
                );
            }
        };
        let key = StreamKey::new(strip_query(&app), name);
        self.request_access(request_id, key, Action::Publish, query, None);
        Ok(())
    }

    /// Takes the stream once authorization passed; Publish.Start goes out only now.
    fn start_publish(&mut self, request_id: u32, key: StreamKey) -> Result<(), ConnError> {
        match self.hub.publish(key.clone(), self.peer) {
            Ok(publisher) => {
                tracing::Span::current().record("stream", tracing::field::display(&key));
                self.role = Role::Publishing(publisher);
                self.accept(request_id)
            }
            Err(e) => {
                let reason = e.to_string();
                self.reject(
                    request_id,
                    "NetStream.Publish.BadName",
                    reason.clone(),
                    ConnError::PublishRefused(reason),
                )
            }
        }
    }

    fn on_play(
        &mut self,
        request_id: u32,
        app: String,
        raw_key: String,
        stream_id: u32,
    ) -> Result<(), ConnError> {
        let (name, query) = match parse_stream_name(&raw_key) {
            Ok(x) => x,
            Err(reason) => {
                return self.reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    reason.into(),
                    ConnError::PlayRefused(reason.into()),
                );
            }
        };
        let key = StreamKey::new(strip_query(&app), name);
        self.request_access(request_id, key, Action::Play, query, Some(stream_id));
        Ok(())
    }

    /// Subscribes once authorization passed.
    fn start_play(
        &mut self,
        request_id: u32,
        key: StreamKey,
        stream_id: u32,
    ) -> Result<(), ConnError> {
        match self.hub.subscribe(&key, Protocol::Rtmp) {
            Ok(sub) => {
                tracing::Span::current().record("stream", tracing::field::display(&key));
                tracing::info!("play started");
                let results = self
                    .session
                    .accept_request(request_id)
                    .map_err(|e| ConnError::Session(format!("{e:?}")))?;
                // rml_rtmp adds `|RtmpSampleAccess` and `onStatus` data messages, which
                // ffmpeg turns into extra "data" streams. They are the only messages it sends
                // on chunk stream 3 here, and it never sends there again, so leaving them out
                // cannot break its header compression.
                let results = results
                    .into_iter()
                    .filter(|r| !matches!(r, ServerSessionResult::OutboundResponse(p) if p.bytes.first().map(|b| b & 0x3f) == Some(3)))
                    .collect();
                self.apply(results)?;
                self.role = Role::Playing { sub, stream_id };
                Ok(())
            }
            Err(e) => {
                let reason = e.to_string();
                self.reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    reason.clone(),
                    ConnError::PlayRefused(reason),
                )
            }
        }
    }
}

/// The app name without a `?query` (rml_rtmp reports the connect URL's app as given).
fn strip_query(app: &str) -> String {
    app.split_once('?').map_or(app, |(a, _)| a).to_string()
}

async fn next_frames(
    role: &mut Role,
    batch: &mut Vec<Arc<SharedFrame>>,
) -> Result<(), crate::hub::StreamEnded> {
    match role {
        Role::Playing { sub, .. } => sub.next_batch(batch).await,
        _ => std::future::pending().await,
    }
}

async fn read_some(
    socket: &mut TcpStream,
    buf: &mut [u8],
    idle: Option<Duration>,
) -> Result<usize, ConnError> {
    match idle {
        Some(limit) => tokio::time::timeout(limit, socket.read(buf))
            .await
            .map_err(|_| ConnError::Idle(limit))?
            .map_err(ConnError::from),
        None => Ok(socket.read(buf).await?),
    }
}

/// Writes every buffer with as few `writev` calls as the socket allows; a peer that
/// accepts nothing for `limit` is cut off.
pub async fn write_all_vectored(
    socket: &mut TcpStream,
    parts: &[Bytes],
    limit: Duration,
) -> Result<(), ConnError> {
    let mut idx = 0;
    let mut offset = 0;
    while idx < parts.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(&parts[idx][offset..])
            .chain(parts[idx + 1..].iter().map(|p| &p[..]))
            .take(512)
            .map(IoSlice::new)
            .collect();
        let n = tokio::time::timeout(limit, socket.write_vectored(&slices))
            .await
            .map_err(|_| ConnError::WriteTimeout(limit))??;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        let mut left = n;
        while left > 0 && idx < parts.len() {
            let avail = parts[idx].len() - offset;
            if left >= avail {
                left -= avail;
                idx += 1;
                offset = 0;
            } else {
                offset += left;
                left = 0;
            }
        }
        while idx < parts.len() && parts[idx].len() == offset {
            idx += 1;
            offset = 0;
        }
    }
    Ok(())
}

/// Runs the server side of the handshake; returns bytes the client sent after it.
async fn handshake(socket: &mut TcpStream) -> Result<Vec<u8>, ConnError> {
    let mut hs = Handshake::new(PeerType::Server);
    let mut buf = [0u8; HANDSHAKE_READ];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(ConnError::Handshake("peer closed during handshake".into()));
        }
        match handshake_step(&mut hs, &buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                if !response_bytes.is_empty() {
                    socket.write_all(&response_bytes).await?;
                }
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                if !response_bytes.is_empty() {
                    socket.write_all(&response_bytes).await?;
                }
                return Ok(remaining_bytes);
            }
        }
    }
}

/// Feeds received bytes to rml_rtmp's server handshake. A panic in it ends only this
/// connection, as an error.
pub fn handshake_step(
    hs: &mut Handshake,
    bytes: &[u8],
) -> Result<HandshakeProcessResult, ConnError> {
    catch_unwind(AssertUnwindSafe(|| hs.process_bytes(bytes)))
        .map_err(|_| ConnError::Panicked("rml_rtmp's handshake"))?
        .map_err(|e| ConnError::Handshake(format!("{e:?}")))
}
