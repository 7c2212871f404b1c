//! Microphone capture with cpal (ALSA on Linux), behind the `capture` feature. The stream
//! runs on a thread of its own (a cpal stream is not `Send`); its callback hands 16-bit
//! samples to a bounded channel (64 callbacks) and drops them when the pipeline is that far
//! behind. Samples are converted to the output's channel count and rate on the way out.

use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};

use super::raw::RawAudio;
use crate::process::audio::{remix, Resampler};
use crate::PushError;

const SILENCE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Mic {
    rx: Receiver<Vec<i16>>,
    in_channels: u8,
    channels: u8,
    resampler: Resampler,
    buffered: Vec<i16>,
    _stop: crossbeam_channel::Sender<()>,
}

impl Mic {
    /// The default input device, or the first whose name contains `name`.
    pub fn open(name: Option<&str>, sample_rate: u32, channels: u8) -> Result<Self, PushError> {
        let (tx, rx) = bounded::<Vec<i16>>(64);
        let (ready_tx, ready_rx) = bounded(1);
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let name = name.map(str::to_string);
        std::thread::Builder::new()
            .name("push-mic".into())
            .spawn(move || {
                let r = (|| -> Result<(cpal::Stream, u32, u8), PushError> {
                    let dev_err = |e: String| PushError::Device(format!("microphone: {e}"));
                    let host = cpal::default_host();
                    let device = match &name {
                        None => host.default_input_device(),
                        Some(n) => host
                            .input_devices()
                            .map_err(|e| dev_err(e.to_string()))?
                            .find(|d| d.name().is_ok_and(|dn| dn.contains(n.as_str()))),
                    }
                    .ok_or_else(|| {
                        dev_err(format!(
                            "no input device {}",
                            name.as_deref().unwrap_or("(default)")
                        ))
                    })?;
                    let supported = device
                        .default_input_config()
                        .map_err(|e| dev_err(e.to_string()))?;
                    let config: cpal::StreamConfig = supported.config();
                    let in_ch = config.channels.clamp(1, 2) as u8;
                    let raw_ch = config.channels as usize;
                    let err_fn = |e| tracing::warn!(error = %e, "microphone stream error");
                    // Keep at most two channels; convert to i16.
                    let take = move |frame: &[i16]| -> Vec<i16> {
                        frame[..(in_ch as usize).min(frame.len())].to_vec()
                    };
                    let stream = match supported.sample_format() {
                        cpal::SampleFormat::I16 => {
                            let tx = tx.clone();
                            device.build_input_stream(
                                &config,
                                move |data: &[i16], _: &_| {
                                    let v = data.chunks(raw_ch).flat_map(take).collect();
                                    let _ = tx.try_send(v);
                                },
                                err_fn,
                                None,
                            )
                        }
                        cpal::SampleFormat::F32 => {
                            let tx = tx.clone();
                            device.build_input_stream(
                                &config,
                                move |data: &[f32], _: &_| {
                                    let v: Vec<i16> = data
                                        .iter()
                                        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
                                        .collect();
                                    let v = v.chunks(raw_ch).flat_map(take).collect();
                                    let _ = tx.try_send(v);
                                },
                                err_fn,
                                None,
                            )
                        }
                        other => return Err(dev_err(format!("sample format {other:?}"))),
                    }
                    .map_err(|e| dev_err(e.to_string()))?;
                    stream.play().map_err(|e| dev_err(e.to_string()))?;
                    Ok((stream, config.sample_rate.0, in_ch))
                })();
                match r {
                    Ok((stream, rate, ch)) => {
                        let _ = ready_tx.send(Ok((rate, ch)));
                        // Keep the stream alive until the Mic is dropped.
                        let _ = stop_rx.recv();
                        drop(stream);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| PushError::Device(format!("microphone thread: {e}")))?;
        let (in_rate, in_channels) = ready_rx
            .recv_timeout(SILENCE_TIMEOUT)
            .map_err(|_| PushError::Device("microphone did not open".into()))??;
        tracing::info!(rate = in_rate, channels = in_channels, "microphone open");
        Ok(Self {
            rx,
            in_channels,
            channels,
            resampler: Resampler::new(in_rate, sample_rate, channels),
            buffered: Vec::new(),
            _stop: stop_tx,
        })
    }
}

impl RawAudio for Mic {
    fn self_paced(&self) -> bool {
        true
    }

    fn next(&mut self, frames: usize) -> Result<Option<Vec<i16>>, PushError> {
        let want = frames * self.channels as usize;
        while self.buffered.len() < want {
            match self.rx.recv_timeout(SILENCE_TIMEOUT) {
                Ok(block) => {
                    let mixed = remix(&block, self.in_channels, self.channels);
                    self.buffered.extend(self.resampler.process(&mixed));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(PushError::Device(format!(
                        "no microphone samples for {SILENCE_TIMEOUT:?}"
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
        Ok(Some(self.buffered.drain(..want).collect()))
    }
}
