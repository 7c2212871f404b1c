//! The audio of a stream as Opus for WebRTC, once per stream, only while a WebRTC viewer
//! watches: AAC (fdk-aac) or MP3 (symphonia) decoded, resampled to 48 kHz stereo (rubato), encoded to Opus
//! (libopus) in 20 ms packets; Opus sources pass through. The feed is a server-side
//! subscriber of the hub; it never waits for a viewer (its broadcast ring overwrites).
//! The codec work runs on a thread of its own per stream (`TRANSCODE_THREAD`), off the
//! async workers, so it never delays a socket and its CPU can be read on its own.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex, Weak};

use onair_shared::{Codec, CodecConfig, Frame};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::clock::{AudioTimeline, Placement, OPUS_FRAME};
use crate::hub::{Item, SharedFrame, Stream, StreamKey, Subscription};

/// The name of each stream's transcode thread (its `/proc/PID/task/*/comm`): the bench
/// reads the transcode's CPU time from it.
pub const TRANSCODE_THREAD: &str = "onair-opus";

/// Audio frames waiting for the transcode thread. Past it newer frames are dropped (the
/// timeline then jumps over the gap), so a stalled transcoder never holds the hub's
/// subscriber back; 64 AAC frames are about 1.4 s.
const TRANSCODE_QUEUE_FRAMES: usize = 64;

/// One Opus packet on the stream's 48 kHz timeline (sample position of its start).
#[derive(Debug)]
pub struct OpusPacket {
    pub pos48: u64,
    pub data: Arc<[u8]>,
}

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("AAC decoder: {0}")]
    Aac(String),
    #[error("MP3 decoder: {0}")]
    Mp3(String),
    #[error("resampler: {0}")]
    Resample(String),
    #[error("Opus encoder: {0}")]
    Opus(#[from] opus::Error),
}

/// The running feeds, one per stream at most; a feed ends when its last viewer leaves.
#[derive(Default)]
pub struct OpusFeeds {
    feeds: Mutex<HashMap<StreamKey, Weak<FeedShared>>>,
}

struct FeedShared {
    tx: broadcast::Sender<Arc<OpusPacket>>,
    stop: CancellationToken,
}

impl Drop for FeedShared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A viewer's hold on its stream's feed; the feed stops when the last one is dropped.
pub struct FeedHandle {
    _shared: Arc<FeedShared>,
}

impl OpusFeeds {
    /// Joins (or starts) the feed of `stream`. Packets come from the moment of joining.
    pub fn join(
        &self,
        stream: &Arc<Stream>,
        bitrate: i32,
        queue: usize,
    ) -> (FeedHandle, broadcast::Receiver<Arc<OpusPacket>>) {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds.retain(|_, w| w.strong_count() > 0);
        if let Some(shared) = feeds.get(&stream.key).and_then(Weak::upgrade) {
            let rx = shared.tx.subscribe();
            return (FeedHandle { _shared: shared }, rx);
        }
        let (tx, rx) = broadcast::channel(queue.max(4));
        let stop = CancellationToken::new();
        let shared = Arc::new(FeedShared {
            tx: tx.clone(),
            stop: stop.clone(),
        });
        feeds.insert(stream.key.clone(), Arc::downgrade(&shared));
        let sub = Subscription::internal(stream);
        let span = stream.span.clone();
        tokio::spawn(async move {
            let _e = span.enter();
            tracing::info!("opus feed started");
            tokio::select! {
                () = run(sub, tx, bitrate) => {}
                () = stop.cancelled() => {}
            }
            tracing::info!("opus feed stopped");
        });
        (FeedHandle { _shared: shared }, rx)
    }
}

/// Hands the stream's audio frames to its transcode thread until the stream ends or this
/// future is dropped (which ends the thread: its queue closes).
async fn run(mut sub: Subscription, tx: broadcast::Sender<Arc<OpusPacket>>, bitrate: i32) {
    let (frames, queue) = sync_channel::<Arc<SharedFrame>>(TRANSCODE_QUEUE_FRAMES);
    let span = tracing::Span::current();
    let worker = std::thread::Builder::new()
        .name(TRANSCODE_THREAD.into())
        .spawn(move || {
            let _e = span.enter();
            transcode(queue, tx, bitrate);
        });
    if let Err(e) = worker {
        tracing::warn!(error = %e, "no transcode thread: WebRTC viewers get no sound");
        return;
    }
    let mut dropped = 0u64;
    while let Ok(item) = sub.next_item().await {
        let Item::Frame(f) = item else { continue };
        if !f.is_audio() {
            continue;
        }
        match frames.try_send(f) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                dropped += 1;
                tracing::debug!(dropped, "transcode behind: audio frame dropped");
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// The transcode thread: audio frames in, Opus packets out, until the queue closes.
fn transcode(
    queue: Receiver<Arc<SharedFrame>>,
    tx: broadcast::Sender<Arc<OpusPacket>>,
    bitrate: i32,
) {
    let mut timeline = AudioTimeline::default();
    let mut transcoder: Option<ToOpus> = None;
    for f in queue {
        let Some(frame) = f.as_frame() else {
            // A new configuration: the next AAC frame builds a decoder for it.
            transcoder = None;
            continue;
        };
        let Some(config) = f.codec_config() else {
            continue;
        };
        let out = match frame.codec {
            Codec::Opus => passthrough(&mut timeline, frame),
            Codec::Aac | Codec::Mp3 => {
                if transcoder.is_none() {
                    match ToOpus::new(config, bitrate) {
                        Ok(t) => transcoder = Some(t),
                        Err(e) => {
                            tracing::warn!(error = %e, codec = frame.codec.name(), "cannot transcode this audio track");
                            continue;
                        }
                    }
                }
                let Some(t) = transcoder.as_mut() else {
                    continue;
                };
                match t.push(&mut timeline, frame) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(error = %e, "audio frame skipped");
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        for p in out {
            // No receivers is normal between viewers.
            let _ = tx.send(Arc::new(p));
        }
    }
}

fn passthrough(timeline: &mut AudioTimeline, frame: &Frame) -> Vec<OpusPacket> {
    let samples = opus_packet_samples(&frame.data).unwrap_or(OPUS_FRAME);
    match timeline.place(frame.dts, samples) {
        Placement::At(p) | Placement::JumpTo(p) => vec![OpusPacket {
            pos48: p,
            data: Arc::from(&frame.data[..]),
        }],
        Placement::Drop => Vec::new(),
    }
}

/// Samples (at 48 kHz) an Opus packet holds, from its TOC byte (RFC 6716, 3.1).
pub fn opus_packet_samples(packet: &[u8]) -> Option<u64> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let per_frame: u64 = match config {
        0..=11 => [480, 960, 1920, 2880][(config % 4) as usize],
        12..=15 => [480, 960][(config % 2) as usize],
        _ => [120, 240, 480, 960][(config % 4) as usize],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3f) as u64,
    };
    (frames > 0).then_some(per_frame * frames)
}

/// The decoder of one AAC or MP3 track configuration.
enum SourceDecoder {
    Aac(fdk_aac::dec::Decoder),
    Mp3(Box<symphonia_bundle_mp3::MpaDecoder>),
}

impl SourceDecoder {
    fn new(config: &CodecConfig) -> Result<Self, TranscodeError> {
        if config.mp3().is_some() {
            let mut params = symphonia_core::codecs::audio::AudioCodecParameters::new();
            params.for_codec(symphonia_core::codecs::audio::well_known::CODEC_ID_MP3);
            let decoder = symphonia_bundle_mp3::MpaDecoder::try_new(&params, &Default::default())
                .map_err(|e| TranscodeError::Mp3(e.to_string()))?;
            return Ok(Self::Mp3(Box::new(decoder)));
        }
        let mut decoder = fdk_aac::dec::Decoder::new(fdk_aac::dec::Transport::Raw);
        decoder
            .config_raw(&config.record)
            .map_err(|e| TranscodeError::Aac(e.message().to_string()))?;
        Ok(Self::Aac(decoder))
    }

    /// Decodes one access unit (an AAC frame, or one MP3 frame as FLV carries it) into
    /// interleaved f32 samples in `out`; returns the sample rate and channel count.
    fn decode(
        &mut self,
        data: &[u8],
        pcm: &mut [i16],
        out: &mut Vec<f32>,
    ) -> Result<(u32, usize), TranscodeError> {
        out.clear();
        match self {
            Self::Aac(decoder) => {
                let aac =
                    |e: fdk_aac::dec::DecoderError| TranscodeError::Aac(e.message().to_string());
                decoder.fill(data).map_err(aac)?;
                decoder.decode_frame(pcm).map_err(aac)?;
                let info = *decoder.stream_info();
                let channels = info.numChannels.max(1) as usize;
                let frames = info.frameSize.max(0) as usize;
                let samples = &pcm[..(frames * channels).min(pcm.len())];
                out.extend(samples.iter().map(|&v| v as f32 / 32768.0));
                Ok((info.sampleRate.max(1) as u32, channels))
            }
            Self::Mp3(decoder) => {
                use symphonia_core::codecs::audio::AudioDecoder;
                use symphonia_core::packet::PacketRef;
                use symphonia_core::units::{Duration, Timestamp};
                let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(0), data);
                let buf = decoder
                    .decode_ref(&packet)
                    .map_err(|e| TranscodeError::Mp3(e.to_string()))?;
                let rate = buf.spec().rate().max(1);
                let channels = buf.spec().channels().count().max(1);
                buf.copy_to_vec_interleaved::<f32>(out);
                Ok((rate, channels))
            }
        }
    }
}

/// Decode, resample, re-frame and encode; one per AAC or MP3 configuration.
struct ToOpus {
    decoder: SourceDecoder,
    /// Decoded interleaved samples of the last frame, as the source has them.
    decoded: Vec<f32>,
    resampler: Option<Fft<f32>>,
    in_rate: u32,
    /// Decoded stereo samples waiting for a full resampler chunk.
    pending_in: Vec<f32>,
    /// 48 kHz stereo samples waiting for a full Opus frame, starting at `fifo_pos`.
    fifo: Vec<f32>,
    fifo_pos: u64,
    encoder: opus::Encoder,
    pcm: Vec<i16>,
}

impl ToOpus {
    fn new(config: &CodecConfig, bitrate: i32) -> Result<Self, TranscodeError> {
        let decoder = SourceDecoder::new(config)?;
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio)?;
        encoder.set_bitrate(opus::Bitrate::Bits(bitrate))?;
        Ok(Self {
            decoder,
            decoded: Vec::new(),
            resampler: None,
            in_rate: 0,
            pending_in: Vec::new(),
            fifo: Vec::new(),
            fifo_pos: 0,
            encoder,
            pcm: vec![0; 8 * 2048],
        })
    }

    fn push(
        &mut self,
        timeline: &mut AudioTimeline,
        frame: &Frame,
    ) -> Result<Vec<OpusPacket>, TranscodeError> {
        let (rate, channels) =
            self.decoder
                .decode(&frame.data, &mut self.pcm, &mut self.decoded)?;
        let frames = self.decoded.len() / channels;
        if rate != self.in_rate && frames > 0 {
            self.in_rate = rate;
            self.pending_in.clear();
            // One resampler chunk per source frame (1024 samples for AAC, 1152 for MP3), so
            // each frame's output is its own duration and the timeline's count follows the
            // timestamps; chunks of another size would drift up to a chunk off them.
            self.resampler = if rate == 48_000 {
                None
            } else {
                Some(
                    Fft::<f32>::new(rate as usize, 48_000, frames, 2, FixedSync::Input)
                        .map_err(|e| TranscodeError::Resample(e.to_string()))?,
                )
            };
        }
        // To interleaved stereo f32: mono is doubled, more channels keep the first two.
        for s in self.decoded.chunks(channels) {
            let l = s[0];
            let r = s.get(1).copied().unwrap_or(l);
            self.pending_in.extend_from_slice(&[l, r]);
        }
        let mut out48 = Vec::new();
        match &mut self.resampler {
            None => out48.append(&mut self.pending_in),
            Some(rs) => loop {
                let need = rs.input_frames_next();
                if self.pending_in.len() < need * 2 {
                    break;
                }
                let input = InterleavedSlice::new(&self.pending_in[..need * 2], 2, need)
                    .map_err(|e| TranscodeError::Resample(e.to_string()))?;
                let res = rs
                    .process(&input, None)
                    .map_err(|e| TranscodeError::Resample(e.to_string()))?;
                out48.extend_from_slice(&res.take_data());
                self.pending_in.drain(..need * 2);
            },
        }
        let samples48 = (out48.len() / 2) as u64;
        let mut packets = Vec::new();
        match timeline.place(frame.dts, samples48) {
            Placement::Drop => return Ok(packets),
            Placement::At(p) if self.fifo.is_empty() => self.fifo_pos = p,
            Placement::At(_) => {}
            Placement::JumpTo(p) => {
                if !self.fifo.is_empty() {
                    self.fifo.resize(OPUS_FRAME as usize * 2, 0.0);
                    packets.extend(self.encode_ready()?);
                }
                self.fifo.clear();
                self.fifo_pos = p;
            }
        }
        self.fifo.extend_from_slice(&out48);
        packets.extend(self.encode_ready()?);
        Ok(packets)
    }

    fn encode_ready(&mut self) -> Result<Vec<OpusPacket>, TranscodeError> {
        let n = OPUS_FRAME as usize * 2;
        let mut packets = Vec::new();
        let mut buf = [0u8; 1500];
        while self.fifo.len() >= n {
            let len = self.encoder.encode_float(&self.fifo[..n], &mut buf)?;
            packets.push(OpusPacket {
                pos48: self.fifo_pos,
                data: Arc::from(&buf[..len]),
            });
            self.fifo.drain(..n);
            self.fifo_pos += OPUS_FRAME;
        }
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_packet_durations_come_from_the_toc() {
        // CELT fullband 20 ms, one frame (what libopus makes by default).
        assert_eq!(opus_packet_samples(&[0xfc, 1, 2]), Some(960));
        // SILK 60 ms, two frames.
        assert_eq!(opus_packet_samples(&[(3 << 3) | 1]), Some(5760));
        // Code 3: the frame count is in the second byte.
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3, 3]), Some(2880));
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3]), None);
        assert_eq!(opus_packet_samples(&[]), None);
    }
}
