//! HTTP-FLV: `GET /{app}/{stream}.flv` as an endless FLV file. The FLV header goes
//! first, then the start frames and live frames as shared FLV tags, built once per frame
//! from the codec-neutral frame (`SharedFrame::flv_tag`).

use std::sync::Arc;

use bytes::Bytes;
use onair_shared::flv;

use super::body::{Chunks, ResponseBody};
use crate::clients::ClientHandle;
use crate::hub::{SharedFrame, Subscription};

/// The live body for one viewer; it ends when the stream ends. Its bytes are counted in
/// the stream's figures and the viewer's `client` entry.
pub fn live_body(sub: Subscription, client: ClientHandle) -> ResponseBody {
    let stream = sub.stream().clone();
    let (has_audio, has_video) = match (stream.has_audio(), stream.has_video()) {
        // Nothing known yet: announce both rather than hide a track that is coming.
        (false, false) => (true, true),
        known => known,
    };
    let header = Bytes::copy_from_slice(&flv::header(has_audio, has_video));
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
