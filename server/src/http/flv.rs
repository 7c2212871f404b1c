//! HTTP-FLV: `GET /{app}/{stream}.flv` as an endless FLV file. The FLV header goes
//! first, then the start frames and live frames as shared FLV tags, built once per frame
//! from the codec-neutral frame (`SharedFrame::flv_tag`). A connection whose first
//! request is the FLV GET is served here without hyper (`serve_direct`); a later request
//! on a kept-alive connection, and HTTPS, get hyper's body (`live_body`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use onair_shared::flv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::body::{Chunks, ResponseBody};
use super::sniff;
use crate::clients::ClientHandle;
use crate::config::ms;
use crate::fanout::{self, Why};
use crate::hub::{SharedFrame, Subscription};
use crate::rtmp::socket::{write_all_vectored, SharedTcp};

/// The live body for one viewer; it ends when the stream ends. Its bytes are counted in
/// the stream's figures and the viewer's `client` entry.
pub fn live_body(sub: Subscription, client: ClientHandle) -> ResponseBody {
    let header = file_header(&sub);
    let state = (sub, Some(header), Vec::<Arc<SharedFrame>>::new(), client);
    let s =
        futures_util::stream::unfold(state, |(mut sub, header, mut batch, client)| async move {
            let mut chunks = Chunks::default();
            if let Some(h) = header {
                client.add_bytes(h.len());
                chunks.push(h);
            }
            batch.clear();
            if sub.next_batch(&mut batch).await.is_err() {
                return None;
            }
            let mut total = 0;
            for f in &batch {
                let tag = f.flv_tag().clone();
                // A unit with no legacy FLV form (an MP3 configuration) adds nothing.
                if tag.is_empty() {
                    continue;
                }
                total += tag.len();
                chunks.push(tag);
            }
            sub.stream().add_out(total);
            client.add_bytes(total);
            Some((chunks, (sub, None, batch, client)))
        });
    ResponseBody::Live(Box::pin(s))
}

/// Serves a plain TCP connection whose first request is a live HTTP-FLV GET, without
/// hyper (see `super::sniff`): the response head and FLV header go out from here, then
/// the socket goes to the stream's fan-out loops, which write every frame's shared tag
/// to it in their one pass per frame. This task only reads the socket (to see the viewer
/// leave) and waits for a kick, the shutdown, or the loop giving the viewer back. Where
/// no loop takes it (`hub.fanout = false`, or a full loop queue), it writes the frames
/// itself. The body is close-delimited: it ends with the connection.
pub async fn serve_direct(
    socket: TcpStream,
    path: String,
    query: String,
    ctx: super::HttpContext,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let sock = Arc::new(socket);
    let mut io = SharedTcp(sock.clone());
    let write_timeout = ms(ctx.hub.config().viewer_write_timeout_ms);
    let kill = CancellationToken::new();
    let Some((key, _)) = super::media_path(&path) else {
        return;
    };
    // Boxed: awaited once, and its state (the authorization hook's request among it) would
    // otherwise stay in this task's future for as long as the viewer plays.
    let opened = tokio::select! {
        o = Box::pin(super::open_flv(&ctx, &key, &query, peer, &kill)) => o,
        _ = shutdown.cancelled() => return,
    };
    let (sub, client) = match opened {
        Ok(opened) => opened,
        Err(res) => {
            let res = super::with_cors(res, super::allowed_methods(&path));
            tracing::debug!(%path, status = res.status().as_u16(), "request");
            let bytes = sniff::encode_full(&res.map(ResponseBody::into_bytes));
            if write_all_vectored(&mut io, &[bytes.into()], write_timeout)
                .await
                .is_ok()
            {
                let _ = io.shutdown().await;
            }
            return;
        }
    };
    tracing::debug!(%path, status = 200, "request");
    let head = super::with_cors(
        super::flv_response(ResponseBody::empty()),
        super::allowed_methods(&path),
    );
    let header = file_header(&sub);
    let head = Bytes::from(sniff::encode_head(&head, None));
    if write_all_vectored(&mut io, &[head, header.clone()], write_timeout)
        .await
        .is_err()
    {
        return;
    }
    client.add_bytes(header.len());

    let mut sub = Some(sub);
    let mut fan = None;
    let hub_cfg = ctx.hub.config();
    if hub_cfg.fanout {
        let viewer = fanout::Viewer {
            sub: sub.take().expect("just set"),
            sock: sock.clone(),
            format: fanout::Format::Flv,
            client: Some(client.byte_counter()),
            write_timeout,
        };
        match fanout::attach(viewer, hub_cfg.fanout_loops) {
            Ok(ticket) => fan = Some(ticket),
            Err(viewer) => sub = Some(viewer.sub),
        }
    }
    let mut batch = Vec::new();
    let mut parts = Vec::new();
    // Small: a viewer sends nothing after its request, and this sits in its task for as
    // long as it plays.
    let mut input = [0u8; 64];
    let mut stop = crate::stop::StopSignal::new(shutdown);
    let mut kicked = crate::stop::StopSignal::new(kill);
    let why = loop {
        let writing = sub.is_some();
        let attached = fan.is_some();
        tokio::select! {
            biased;
            r = crate::hub::next_batch_of(&mut sub, &mut batch), if writing => {
                if r.is_err() {
                    break "stream ended";
                }
                parts.clear();
                parts.extend(batch.drain(..).map(|f| f.flv_tag().clone()).filter(|t| !t.is_empty()));
                if let Err(e) = write_all_vectored(&mut io, &parts, write_timeout).await {
                    tracing::debug!(error = %e, "http-flv viewer cut off");
                    break "write failed";
                }
                let total: usize = parts.iter().map(|p| p.len()).sum();
                if let Some(s) = &sub {
                    s.stream().add_out(total);
                }
                client.add_bytes(total);
            }
            back = fanout::returned(&mut fan), if attached => {
                fan = None;
                let Some(back) = back else { break "stream ended" };
                match back.why {
                    Why::Ended => {
                        // The rest of a tag the socket took only part of, then the end.
                        let _ = write_all_vectored(&mut io, &back.unsent, write_timeout).await;
                        break "stream ended";
                    }
                    Why::WriteTimeout(limit) => {
                        tracing::info!(?limit, "http-flv viewer took nothing for the write timeout");
                        break "write timeout";
                    }
                    Why::Io(e) => {
                        tracing::debug!(error = %e, "http-flv viewer's socket failed");
                        break "write failed";
                    }
                    // Not asked for here; carry on writing from this task.
                    Why::Recalled | Why::Refused(_) => {
                        if write_all_vectored(&mut io, &back.unsent, write_timeout).await.is_err() {
                            break "write failed";
                        }
                        sub = Some(back.sub);
                    }
                }
            }
            // A viewer sends nothing after its request; anything it does send is read
            // and dropped, and its end (or an error) is the viewer leaving.
            r = io.read(&mut input) => match r {
                Ok(0) | Err(_) => break "viewer left",
                Ok(_) => {}
            },
            _ = &mut stop => break "server shutting down",
            _ = &mut kicked => break "kicked by an operator",
        }
    };
    // Dropping the ticket lets the loop drop the viewer; the socket closes with the last
    // of its two handles.
    drop(fan);
    tracing::info!(stream = %key, reason = why, "http-flv play ended");
}

/// The FLV file header for `sub`'s stream: the tracks it has, or both while none is
/// known yet (rather than hide a track that is coming).
fn file_header(sub: &Subscription) -> Bytes {
    let stream = sub.stream();
    let (has_audio, has_video) = match (stream.has_audio(), stream.has_video()) {
        (false, false) => (true, true),
        known => known,
    };
    Bytes::copy_from_slice(&flv::header(has_audio, has_video))
}
