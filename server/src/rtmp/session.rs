//! One RTMP connection's protocol state, as a pure state machine: received bytes go in
//! with `push`, and `poll` hands out what to do, in order (`Action`: bytes to send, an
//! authorization to check, a stream to publish or play, media for the hub, a close).
//! Where an action needs an answer (authorization, publish, play), the caller gives it
//! with `answer`, and input stays unread until then. The session holds no socket, hub
//! or clock and spawns nothing; `super::driver` runs it over any transport.
//!
//! rml_rtmp does the handshake and the command exchange (connect, createStream,
//! publish, play); our chunk decoder reads every message first, so media never goes
//! through rml_rtmp. Its `ServerSession` parses connect's command object itself and
//! reports only the app name, so the Enhanced RTMP connect fields (`fourCcList`,
//! `videoFourCcInfoMap`, `audioFourCcInfoMap`, `capsEx`) never reach us through it: we
//! read them ourselves from the same bytes (`ClientCaps`, in `on_command`). It also
//! writes connect's `_result` without a way to add fields, so that one reply is ours
//! (`accept_connect`): the same fields plus the FourCCs and capsEx onair handles.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use onair_shared::eflv::connect::ClientCaps;
use onair_shared::flv::{TAG_AUDIO, TAG_VIDEO};
use onair_shared::ingest::{TagReader, TrackItem};
use onair_shared::metadata::{decode_amf0, parse_script, Amf0Value, AmfError, ScriptData};
use onair_shared::{CodecConfig, Frame};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use super::chunk::{encode_message, reencode_like, ChunkDecoder, ChunkLimits, RtmpMessage};
use super::error::ConnError;
use super::handshake::{HandshakeStep, ServerHandshake};
use super::messages::*;
use crate::auth::{Access, Action as AccessAction, Denied};
use crate::config::RtmpConfig;
use crate::hub::{parse_stream_name, PublishError, PushError, StreamKey, SubscribeError};

/// An AMF0 command named "connect" starts with these bytes (string marker, length 7).
const CONNECT_PREFIX: &[u8] = b"\x02\x00\x07connect";

/// What the session wants done, in the order it must happen.
#[derive(Debug)]
pub enum Action {
    /// Bytes for the peer.
    Send(Bytes),
    /// Check this access; answer with `Answer::Authorized`.
    Authorize(Access),
    /// Take `key` for this publisher; answer with `Answer::Published`.
    Publish(StreamKey),
    /// Subscribe to `key` for a player on message stream `stream_id`; answer with
    /// `Answer::Playing`.
    Play { key: StreamKey, stream_id: u32 },
    /// A media message of `bytes` bytes arrived from the publisher (for byte counters).
    Received(usize),
    /// A track's configuration, parsed here.
    Config(CodecConfig),
    /// A frame, parsed here; `dts` is its wire timestamp.
    Media(Frame),
    /// The publisher's `onMetaData`.
    Metadata(ScriptData),
    /// The publisher or player stopped (deleteStream, closeStream) but stays connected.
    Stopped,
    /// Send nothing more after the `Send`s before this, and close.
    Close(ConnError),
}

/// The caller's answer to `Authorize`, `Publish` or `Play`.
#[derive(Debug)]
pub enum Answer {
    Authorized(Result<(), Denied>),
    /// The hub's verdict on a publish; the error's text is the status description.
    Published(Result<(), PublishError>),
    Playing(Result<(), SubscribeError>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Undecided,
    Publishing,
    Playing { stream_id: u32 },
}

/// A publish or play waiting for an answer.
#[derive(Debug, Clone)]
struct Pending {
    request_id: u32,
    key: StreamKey,
    /// The message stream of a play request.
    play_stream_id: Option<u32>,
    /// Authorization passed; waiting for the hub's verdict.
    authorized: bool,
}

enum Phase {
    Handshake(Box<ServerHandshake>, BytesMut),
    Session(Box<ServerSession>),
    Closed,
}

pub struct Session {
    peer_ip: IpAddr,
    cfg: Arc<RtmpConfig>,
    phase: Phase,
    decoder: ChunkDecoder,
    /// Bytes to send not yet handed out as an `Action::Send`.
    out: BytesMut,
    actions: VecDeque<Action>,
    role: Role,
    app: Option<String>,
    /// Query of the connect URL (`rtmp://host/app?key=…`), added to each stream's.
    app_query: String,
    pending: Option<Pending>,
    peer_window_ack: Option<u32>,
    acked: u64,
    /// Turns the publisher's FLV tag bodies into frames and configurations.
    tags: TagReader,
    handshake_done: bool,
    /// The Enhanced RTMP capabilities the client announced in its connect.
    caps: ClientCaps,
    /// Connect's transaction id and objectEncoding, for our `_result`.
    connect_txn: f64,
    object_encoding: f64,
}

impl Session {
    /// A connection that has not started its handshake.
    pub fn new(cfg: Arc<RtmpConfig>, peer_ip: IpAddr) -> Self {
        let decoder = ChunkDecoder::new(ChunkLimits {
            max_chunk_size: cfg.max_chunk_size,
            max_message_size: cfg.max_message_size,
            max_chunk_streams: cfg.max_chunk_streams,
        });
        Self {
            peer_ip,
            cfg,
            phase: Phase::Handshake(Box::default(), BytesMut::new()),
            decoder,
            out: BytesMut::new(),
            actions: VecDeque::new(),
            role: Role::Undecided,
            app: None,
            app_query: String::new(),
            pending: None,
            peer_window_ack: None,
            acked: 0,
            tags: TagReader::new(),
            handshake_done: false,
            caps: ClientCaps::default(),
            connect_txn: 1.0,
            object_encoding: 0.0,
        }
    }

    /// Received bytes; `poll` acts on them.
    pub fn push(&mut self, bytes: &[u8]) {
        match &mut self.phase {
            Phase::Handshake(_, buf) => buf.extend_from_slice(bytes),
            Phase::Session(_) => self.decoder.push(bytes),
            Phase::Closed => {}
        }
    }

    pub fn handshake_done(&self) -> bool {
        self.handshake_done
    }

    /// The message stream this connection plays on, once its play was accepted.
    pub fn playing(&self) -> Option<u32> {
        match self.role {
            Role::Playing { stream_id } => Some(stream_id),
            _ => None,
        }
    }

    /// What the client announced in its connect (FourCCs it handles, capsEx); empty for
    /// a legacy client.
    pub fn client_caps(&self) -> &ClientCaps {
        &self.caps
    }

    pub fn is_publishing(&self) -> bool {
        self.role == Role::Publishing
    }

    /// Waiting for an `answer`; `poll` returns nothing new until then.
    pub fn awaiting_answer(&self) -> bool {
        self.pending.is_some()
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The next thing to do, or `None` when the session needs more input (or an answer).
    pub fn poll(&mut self) -> Option<Action> {
        loop {
            if let Some(a) = self.actions.pop_front() {
                return Some(a);
            }
            if self.pending.is_some() || self.is_closed() {
                return self.take_send();
            }
            match self.step() {
                Ok(true) => continue,
                Ok(false) => {
                    self.ack_if_due();
                    return self.take_send();
                }
                Err(e) => self.close(e),
            }
        }
    }

    /// Answers the pending `Authorize`, `Publish` or `Play`.
    pub fn answer(&mut self, answer: Answer) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        // An answer out of turn (a hub verdict before authorization) changes nothing.
        if matches!(answer, Answer::Authorized(_)) == p.authorized {
            self.pending = Some(p);
            return;
        }
        let r = match answer {
            Answer::Authorized(Ok(())) => {
                p.authorized = true;
                let action = match p.play_stream_id {
                    None => Action::Publish(p.key.clone()),
                    Some(stream_id) => Action::Play {
                        key: p.key.clone(),
                        stream_id,
                    },
                };
                self.pending = Some(p);
                self.emit(action);
                Ok(())
            }
            Answer::Authorized(Err(denied)) => {
                tracing::warn!(stream = %p.key, reason = denied.reason(), "refused: {denied}");
                let (code, action) = if p.play_stream_id.is_some() {
                    ("NetStream.Play.Unauthorized", AccessAction::Play)
                } else {
                    ("NetStream.Publish.Unauthorized", AccessAction::Publish)
                };
                self.reject(
                    p.request_id,
                    code,
                    denied.to_string(),
                    ConnError::Unauthorized { action, denied },
                )
            }
            Answer::Published(Ok(())) => {
                self.role = Role::Publishing;
                self.accept(p.request_id)
            }
            Answer::Published(Err(e)) => self.reject(
                p.request_id,
                "NetStream.Publish.BadName",
                e.to_string(),
                ConnError::PublishRefused(e.to_string()),
            ),
            Answer::Playing(Ok(())) => {
                let stream_id = p.play_stream_id.unwrap_or(1);
                self.start_play(p.request_id, stream_id)
            }
            Answer::Playing(Err(e)) => self.reject(
                p.request_id,
                "NetStream.Play.StreamNotFound",
                e.to_string(),
                ConnError::PlayRefused(e.to_string()),
            ),
        };
        if let Err(e) = r {
            self.close(e);
        }
    }

    /// The hub refused the publisher's media (e.g. it was replaced): tell it, then close.
    pub fn media_refused(&mut self, e: PushError) {
        self.out.extend_from_slice(&on_status(
            1,
            "error",
            "NetStream.Publish.Failed",
            &e.to_string(),
            self.cfg.out_chunk_size,
        ));
        self.close(ConnError::Media(e));
    }

    /// The played stream carries a codec this player did not announce in its connect
    /// (Enhanced RTMP `fourCcList` or the info maps): it would mangle the bytes, so it
    /// gets `NetStream.Play.Failed` naming the codec, then the connection closes.
    pub fn play_refused(&mut self, codec: onair_shared::Codec) {
        let stream_id = self.playing().unwrap_or(1);
        let reason = format!(
            "the stream's codec {} was not announced by this player's connect (fourCcList)",
            codec.name()
        );
        self.out.extend_from_slice(&on_status(
            stream_id,
            "error",
            "NetStream.Play.Failed",
            &reason,
            self.cfg.out_chunk_size,
        ));
        self.close(ConnError::PlayRefused(reason));
    }

    /// An operator kicked this client: tell it why, then close. The driver drains its
    /// input afterwards, so an encoder, which reads only between its writes, sees the
    /// status rather than a reset.
    pub fn kick(&mut self) {
        let (stream_id, code) = match self.role {
            Role::Playing { stream_id } => (stream_id, "NetStream.Play.Stop"),
            // A connection's first createStream gets message stream 1.
            _ => (1, "NetStream.Publish.Rejected"),
        };
        self.out.extend_from_slice(&on_status(
            stream_id,
            "error",
            code,
            "kicked by the server operator",
            self.cfg.out_chunk_size,
        ));
        self.close(ConnError::Kicked);
    }

    /// The played stream ended: tell the player; the caller closes after sending.
    pub fn stream_ended(&mut self) -> Bytes {
        let stream_id = self.playing().unwrap_or(1);
        self.out.extend_from_slice(&on_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            "stream ended",
            self.cfg.out_chunk_size,
        ));
        self.out.split().freeze()
    }

    /// Lets go of what the handshake and the opening commands grew (the 3 KB of S0-S2 and
    /// the queue of their actions): a playing viewer sends only acknowledgements from now
    /// on, and thousands of them hold a session each.
    pub fn release_spare_capacity(&mut self) {
        if self.out.is_empty() {
            self.out = BytesMut::new();
        }
        if self.actions.is_empty() {
            self.actions = VecDeque::new();
        }
    }

    fn take_send(&mut self) -> Option<Action> {
        (!self.out.is_empty()).then(|| Action::Send(self.out.split().freeze()))
    }

    /// Queues an action after every byte queued before it.
    fn emit(&mut self, action: Action) {
        if let Some(send) = self.take_send() {
            self.actions.push_back(send);
        }
        self.actions.push_back(action);
    }

    fn close(&mut self, e: ConnError) {
        self.pending = None;
        self.phase = Phase::Closed;
        self.emit(Action::Close(e));
    }

    /// Acts on buffered input; false when nothing more can be done without input.
    fn step(&mut self) -> Result<bool, ConnError> {
        match &mut self.phase {
            Phase::Handshake(hs, buf) => {
                if buf.is_empty() {
                    return Ok(false);
                }
                let input = buf.split();
                match hs.step(&input)? {
                    HandshakeStep::InProgress { send } => {
                        self.out.extend_from_slice(&send);
                        Ok(false)
                    }
                    HandshakeStep::Done { send, rest } => {
                        self.out.extend_from_slice(&send);
                        self.handshake_done = true;
                        self.start_session()?;
                        self.decoder.push(&rest);
                        Ok(true)
                    }
                }
            }
            Phase::Session(_) => {
                let Some(msg) = self.decoder.next_message()? else {
                    return Ok(false);
                };
                self.on_message(msg)?;
                Ok(true)
            }
            Phase::Closed => Ok(false),
        }
    }

    /// rml_rtmp's session, created right after the handshake; its opening messages
    /// (window size, peer bandwidth, chunk size) go out first.
    fn start_session(&mut self) -> Result<(), ConnError> {
        let mut session_cfg = ServerSessionConfig::new();
        session_cfg.chunk_size = self.cfg.out_chunk_size;
        let (session, initial) =
            ServerSession::new(session_cfg).map_err(|e| ConnError::Session(format!("{e:?}")))?;
        self.phase = Phase::Session(Box::new(session));
        self.apply(initial)
    }

    fn session(&mut self) -> Result<&mut ServerSession, ConnError> {
        match &mut self.phase {
            Phase::Session(s) => Ok(s),
            _ => Err(ConnError::Session("no session before the handshake".into())),
        }
    }

    fn ack_if_due(&mut self) {
        if let Some(window) = self.peer_window_ack {
            let total = self.decoder.bytes_received();
            if total - self.acked >= window as u64 {
                self.acked = total;
                self.out
                    .extend_from_slice(&acknowledgement(total, self.cfg.out_chunk_size));
            }
        }
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
            TYPE_AMF0_DATA => self.on_data(msg.timestamp, msg.payload),
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
        if self.role != Role::Publishing {
            return Ok(());
        }
        // A small payload may share a large read buffer; a copy keeps the GOP cache from
        // pinning whole buffers for a few bytes each.
        let payload = if payload.len() <= 16 * 1024 {
            Bytes::copy_from_slice(&payload)
        } else {
            payload
        };
        self.emit(Action::Received(payload.len()));
        // Parsed here, once; the hub only stores and fans out.
        let parsed = if type_id == TAG_VIDEO {
            self.tags.video_tag(ts, &payload)
        } else {
            self.tags.audio_tag(ts, &payload)
        };
        match parsed {
            Ok(got) => {
                for item in got.into_items() {
                    self.emit(match item {
                        TrackItem::Config(c) => Action::Config(c),
                        TrackItem::Frame(f) => Action::Media(f),
                    });
                }
            }
            Err(e) => self.media_refused(PushError::Ingest(e)),
        }
        Ok(())
    }

    fn on_data(&mut self, ts: u32, payload: Bytes) -> Result<(), ConnError> {
        self.check_command_size("data", payload.len())?;
        if self.role != Role::Publishing {
            return Ok(());
        }
        match parse_script(&payload, self.cfg.max_amf_depth) {
            Ok(script) => {
                tracing::debug!(metadata = ?script.metadata, "metadata");
                self.emit(Action::Metadata(script));
                Ok(())
            }
            // A frame's capture clock (VP9/AV1 pushes from `onair push`) travels with the
            // frames, on their timeline; only a well-formed one, copied out of the read
            // buffer (it is small: the command size limit applies above).
            Err(AmfError::NotMetadata)
                if onair_shared::frame_time::parse(&payload, self.cfg.max_amf_depth).is_some() =>
            {
                let body = Bytes::copy_from_slice(&payload);
                self.emit(Action::Media(Frame::data(ts as u64, body)));
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
                if bytes.starts_with(CONNECT_PREFIX) {
                    // rml_rtmp keeps connect's command object to itself (module comment).
                    let values = decode_amf0(&bytes, self.cfg.max_amf_depth)?;
                    if let Some(Amf0Value::Number(txn)) = values.get(1) {
                        self.connect_txn = *txn;
                    }
                    if let Some(Amf0Value::Object(obj)) = values.get(2) {
                        self.caps = ClientCaps::from_connect_object(obj);
                        if let Some(Amf0Value::Number(enc)) = obj.get("objectEncoding") {
                            self.object_encoding = *enc;
                        }
                    }
                    tracing::debug!(caps = ?self.caps, "connect capabilities");
                }
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
                self.close(ConnError::UnknownCommand(name));
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
        let session = self.session()?;
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
            .session()?
            .accept_request(request_id)
            .map_err(|e| ConnError::Session(format!("{e:?}")))?;
        self.apply(results)
    }

    /// Accepts a connect with our own `_result` in place of rml_rtmp's, which has no
    /// way to add the Enhanced RTMP fields (module comment). Ours goes out in the header
    /// form of rml_rtmp's (`reencode_like`: same chunk stream, timestamp, type), so the
    /// headers rml_rtmp compresses against it later still read right, since no later reply of
    /// its on that stream has the connect reply's length. A reply of another shape is sent
    /// as rml_rtmp wrote it.
    fn accept_connect(&mut self, request_id: u32, app: String) -> Result<(), ConnError> {
        let results = self
            .session()?
            .accept_request(request_id)
            .map_err(|e| ConnError::Session(format!("{e:?}")))?;
        let ours = connect_result(self.connect_txn, self.object_encoding, &app);
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p)
                    if p.bytes.windows(10).any(|w| w == b"\x02\x00\x07_result") =>
                {
                    match reencode_like(&p.bytes, &ours, self.cfg.out_chunk_size) {
                        Some(reply) => self.out.extend_from_slice(&reply),
                        None => {
                            tracing::debug!("rml_rtmp's connect reply sent as it is");
                            self.out.extend_from_slice(&p.bytes);
                        }
                    }
                }
                other => self.apply(vec![other])?,
            }
        }
        self.app = Some(app);
        Ok(())
    }

    /// Refuses a request with rml_rtmp's status for it, then closes.
    fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        reason: String,
        err: ConnError,
    ) -> Result<(), ConnError> {
        let results = self
            .session()?
            .reject_request(request_id, code, &reason)
            .map_err(|e| ConnError::Session(format!("{e:?}")))?;
        self.apply(results)?;
        self.close(err);
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
                self.accept_connect(request_id, app_name)
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
                if self.role == Role::Publishing {
                    tracing::info!("publisher finished");
                    self.role = Role::Undecided;
                    self.emit(Action::Stopped);
                }
                Ok(())
            }
            ServerSessionEvent::PlayStreamFinished { .. } => {
                if self.playing().is_some() {
                    self.role = Role::Undecided;
                    self.emit(Action::Stopped);
                }
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
        if self.role != Role::Undecided {
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
        self.request_access(request_id, key, AccessAction::Publish, query, None);
        Ok(())
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
        // An onair edge's pull (its play name carries the hop list) relays every codec, but
        // its RTMP client (rml_rtmp's) cannot announce a fourCcList in connect.
        if query
            .as_deref()
            .is_some_and(|q| !crate::cluster::hops::parse(q).is_empty())
        {
            self.caps.list_wildcard = true;
        }
        self.request_access(request_id, key, AccessAction::Play, query, Some(stream_id));
        Ok(())
    }

    /// Publish.Start (or the play) waits for every check, the hook included.
    fn request_access(
        &mut self,
        request_id: u32,
        key: StreamKey,
        action: AccessAction,
        query: Option<String>,
        play_stream_id: Option<u32>,
    ) {
        let param = [query.unwrap_or_default(), self.app_query.clone()]
            .into_iter()
            .filter(|q| !q.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        let access = Access {
            action,
            protocol: "rtmp",
            app: key.app.clone(),
            stream: key.name.clone(),
            client_ip: self.peer_ip,
            param,
        };
        self.pending = Some(Pending {
            request_id,
            key,
            play_stream_id,
            authorized: false,
        });
        self.emit(Action::Authorize(access));
    }

    fn start_play(&mut self, request_id: u32, stream_id: u32) -> Result<(), ConnError> {
        tracing::info!("play started");
        let results = self
            .session()?
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
        self.role = Role::Playing { stream_id };
        Ok(())
    }
}

/// The app name without a `?query` (rml_rtmp reports the connect URL's app as given).
fn strip_query(app: &str) -> String {
    app.split_once('?').map_or(app, |(a, _)| a).to_string()
}

#[cfg(test)]
mod tests {
    //! The session alone: byte vectors in, actions out; no socket, hub or runtime.

    use super::*;
    use crate::rtmp::replay::tests::{
        command, connect, create_stream, handshake_bytes, message, publish_session, s as amf_str,
    };
    use onair_shared::metadata::Amf0Value;
    use onair_shared::{Codec, MediaKind};

    fn session() -> Session {
        Session::new(
            Arc::new(RtmpConfig::default()),
            "127.0.0.1".parse().unwrap(),
        )
    }

    fn actions(s: &mut Session) -> Vec<Action> {
        std::iter::from_fn(|| s.poll()).collect()
    }

    fn sent(actions: &[Action]) -> Vec<u8> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn says(bytes: &[u8], what: &str) -> bool {
        bytes.windows(what.len()).any(|w| w == what.as_bytes())
    }

    fn avc_seq_tag() -> Vec<u8> {
        let mut seq = vec![0x17, 0, 0, 0, 0];
        seq.extend(
            onair_shared::avc::AvcDecoderConfig::from_parameter_sets(
                &crate::hls::ts::tests::SPS,
                &crate::hls::ts::tests::PPS,
            )
            .unwrap()
            .to_bytes(),
        );
        seq
    }

    /// Connect, createStream and publish `name`, answered as the driver would.
    fn published(name: &str) -> Session {
        let mut s = session();
        s.push(&publish_session(name));
        let a = actions(&mut s);
        assert!(s.handshake_done());
        let Some(Action::Authorize(access)) = a.last() else {
            panic!("publish asks for authorization: {a:?}");
        };
        assert_eq!(
            (access.app.as_str(), access.stream.as_str()),
            ("live", name)
        );
        assert!(
            !says(&sent(&a), "NetStream.Publish.Start"),
            "not before the checks"
        );
        // Input after the request waits for the answer.
        s.push(&message(TYPE_VIDEO, 0, &avc_seq_tag()));
        assert!(s.poll().is_none() && s.awaiting_answer());
        s.answer(Answer::Authorized(Ok(())));
        let a = actions(&mut s);
        assert!(
            matches!(&a[..], [Action::Publish(k)] if k.to_string() == format!("live/{name}")),
            "{a:?}"
        );
        s.answer(Answer::Published(Ok(())));
        s
    }

    #[test]
    fn connect_publish_and_media_become_actions() {
        let mut s = published("cam");
        assert!(s.is_publishing());
        let a = actions(&mut s);
        assert!(says(&sent(&a), "NetStream.Publish.Start"));
        // The sequence header sent while waiting is read now, as a parsed configuration.
        let config = a.iter().find_map(|a| match a {
            Action::Config(c) => Some(c),
            _ => None,
        });
        let config = config.expect("the AVC sequence header as a configuration");
        assert_eq!(
            (config.codec, config.summary.width),
            (Codec::H264, Some(1280))
        );

        s.push(&message(
            TYPE_VIDEO,
            40,
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0],
        ));
        s.push(&message(TYPE_AUDIO, 45, &[0xaf, 0, 0x12, 0x10]));
        s.push(&message(TYPE_AUDIO, 46, &[0xaf, 1, 0x21]));
        let a = actions(&mut s);
        let kinds: Vec<String> = a
            .iter()
            .map(|a| match a {
                Action::Received(n) => format!("in{n}"),
                Action::Config(c) => format!("config:{}", c.codec.name()),
                Action::Media(f) => format!("{:?}@{}:{}", f.kind, f.dts, f.data.len()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "in11",
                "Video@40:6",
                "in4",
                "config:aac",
                "in3",
                "Audio@46:1"
            ]
        );
        let Some(Action::Media(f)) = a.get(1) else {
            unreachable!()
        };
        assert!(f.keyframe && f.kind == MediaKind::Video);
    }

    #[test]
    fn a_frame_clock_becomes_a_data_frame_and_other_script_data_is_dropped() {
        use onair_shared::frame_time::{self, FrameTime};
        let mut s = published("cam");
        let _ = actions(&mut s);
        let clock = frame_time::encode(FrameTime {
            wallclock_us: 1,
            frame: 2,
            pts_ms: 3,
        });
        s.push(&message(TYPE_AMF0_DATA, 70, &clock));
        // Named like one, but without the numbers (malformed AMF closes, as before); and
        // a name nobody relays.
        s.push(&message(
            TYPE_AMF0_DATA,
            71,
            b"\x02\x00\x0bonFrameTime\x03\x00\x00\x09",
        ));
        s.push(&message(
            TYPE_AMF0_DATA,
            72,
            b"\x02\x00\x0aonTextData\x03\x00\x00\x09",
        ));
        let a = actions(&mut s);
        let media: Vec<_> = a
            .iter()
            .filter_map(|a| match a {
                Action::Media(f) => Some((f.kind, f.dts, f.data.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(media, vec![(MediaKind::Data, 70, clock)], "{a:?}");
        assert!(!a.iter().any(|a| matches!(a, Action::Close(_))), "{a:?}");
    }

    /// A session whose client connected (no Enhanced RTMP fields) and asked to play `name`;
    /// the session waits for the authorization.
    fn play_requested(name: &str) -> Session {
        let mut s = session();
        let mut b = handshake_bytes();
        b.extend(connect("live"));
        b.extend(create_stream());
        b.extend(command(
            4,
            1,
            vec![
                amf_str("play"),
                Amf0Value::Number(4.0),
                Amf0Value::Null,
                amf_str(name),
            ],
        ));
        s.push(&b);
        assert!(matches!(actions(&mut s).last(), Some(Action::Authorize(_))));
        s
    }

    #[test]
    fn an_edge_pull_is_sent_every_codec_without_a_fourcc_list() {
        let s = play_requested("t?onair_via=edge1");
        for codec in [
            Codec::Hevc,
            Codec::Av1,
            Codec::Vp9,
            Codec::Opus,
            Codec::Flac,
        ] {
            assert!(s.client_caps().accepts(codec), "{codec:?}");
        }
    }

    #[test]
    fn play_is_authorized_then_started() {
        let mut s = play_requested("t");
        s.answer(Answer::Authorized(Ok(())));
        let a = actions(&mut s);
        assert!(
            matches!(&a[..], [Action::Play { key, stream_id: 1 }] if key.to_string() == "live/t"),
            "{a:?}"
        );
        assert_eq!(s.playing(), None, "not before the hub said yes");
        s.answer(Answer::Playing(Ok(())));
        let a = actions(&mut s);
        assert!(says(&sent(&a), "NetStream.Play.Start"));
        assert_eq!(s.playing(), Some(1));
        assert!(says(&s.stream_ended(), "NetStream.Play.UnpublishNotify"));
        // A legacy player (no fourCcList) of a stream that turns out to be HEVC.
        assert!(!s.client_caps().accepts(Codec::Hevc));
        s.play_refused(Codec::Hevc);
        let a = actions(&mut s);
        let out = sent(&a);
        assert!(says(&out, "NetStream.Play.Failed"));
        assert!(says(&out, "codec hevc was not announced"));
        assert!(matches!(
            a.last(),
            Some(Action::Close(ConnError::PlayRefused(_)))
        ));
    }

    #[test]
    fn a_refusal_is_a_status_then_close_and_later_input_is_ignored() {
        let mut s = session();
        s.push(&publish_session("cam"));
        actions(&mut s);
        s.answer(Answer::Authorized(Err(Denied::WrongKey)));
        let a = actions(&mut s);
        assert!(says(&sent(&a), "NetStream.Publish.Unauthorized"));
        assert!(
            matches!(
                a.last(),
                Some(Action::Close(ConnError::Unauthorized { .. }))
            ),
            "the status, then the close: {a:?}"
        );
        assert!(s.is_closed());
        s.push(&message(TYPE_VIDEO, 0, &avc_seq_tag()));
        assert!(actions(&mut s).is_empty(), "nothing after the close");

        // The hub refusing the name: its reason in the status.
        let mut s = session();
        s.push(&publish_session("cam"));
        actions(&mut s);
        s.answer(Answer::Authorized(Ok(())));
        actions(&mut s);
        s.answer(Answer::Published(Err(PublishError::AlreadyPublishing(
            StreamKey::new("live", "cam"),
        ))));
        let a = actions(&mut s);
        assert!(says(&sent(&a), "already being published"));
        assert!(matches!(
            a.last(),
            Some(Action::Close(ConnError::PublishRefused(_)))
        ));
    }

    #[test]
    fn a_codec_onair_does_not_carry_is_refused_by_name() {
        let mut s = published("hevc");
        actions(&mut s);
        // Enhanced RTMP AC-3 audio: known by name, not carried.
        s.push(&message(
            TYPE_AUDIO,
            0,
            &[0x90, b'a', b'c', b'-', b'3', 1, 2, 3],
        ));
        let a = actions(&mut s);
        let out = sent(&a);
        assert!(says(&out, "NetStream.Publish.Failed"));
        assert!(says(&out, "unsupported audio codec ac3"));
        assert!(matches!(a.last(), Some(Action::Close(ConnError::Media(_)))));
    }

    #[test]
    fn bad_bytes_close_without_a_panic() {
        let mut s = session();
        s.push(&[0x47; 4000]);
        let a = actions(&mut s);
        assert!(
            matches!(a.last(), Some(Action::Close(ConnError::Handshake(_)))),
            "{a:?}"
        );
        let mut s = session();
        let mut b = handshake_bytes();
        b.extend([0xc7; 64]);
        s.push(&b);
        let a = actions(&mut s);
        assert!(
            matches!(a.last(), Some(Action::Close(ConnError::Chunk(_)))),
            "{a:?}"
        );
    }

    #[test]
    fn the_clients_enhanced_rtmp_capabilities_are_kept() {
        let mut props = std::collections::HashMap::new();
        props.insert("app".to_string(), amf_str("live"));
        props.insert(
            "fourCcList".to_string(),
            Amf0Value::StrictArray(vec![amf_str("hvc1"), amf_str("av01")]),
        );
        props.insert("capsEx".to_string(), Amf0Value::Number(2.0));
        let mut b = handshake_bytes();
        b.extend(command(
            3,
            0,
            vec![
                amf_str("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::Object(props),
            ],
        ));
        let mut s = session();
        s.push(&b);
        let a = actions(&mut s);
        let reply = sent(&a);
        assert!(says(&reply, "NetConnection.Connect.Success"));
        // Our `_result` says what onair forwards.
        assert!(says(&reply, "fourCcList") && says(&reply, "hvc1") && says(&reply, "capsEx"));
        assert!(s.client_caps().accepts(Codec::Av1));
        assert!(!s.client_caps().accepts(Codec::Vp9));
        assert_eq!(s.client_caps().caps_ex, 2);
        // A legacy connect announces nothing.
        let mut legacy = session();
        legacy.push(&[handshake_bytes(), connect("live")].concat());
        actions(&mut legacy);
        assert_eq!(legacy.client_caps(), &ClientCaps::default());
    }
}
