// The player's sound through WebAudio once the viewer unmutes: media element → analyser →
// speakers, and a tap into the beep finder (beeps.worklet.js). It lets the page hear what
// the viewer hears: the tone's spectrum, beep onsets (for the A/V offset), dropouts. It
// must never change the sound: the graph only passes it on.

import workletCode from './beeps.worklet.js?raw';

export class AudioTap {
  constructor() {
    this.ctx = null;
    this.analyser = null;
    this.finder = null;
    this.source = null;
    this.element = null;
    this.stats = null;
    this.ready = null;
    /** Called with the AudioContext time of each beep onset. */
    this.onBeep = () => {};
  }

  /** Creates (or resumes) the AudioContext: call it from the viewer's click. */
  start() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return false;
      // 'interactive': the smallest output buffer. The media element's own A/V sync does not
      // see the graph's output latency, so every millisecond of it makes the sound late
      // (measured in Chromium: about +90 ms with 'playback', +25 ms with 'interactive').
      this.ctx = new Ctx({ latencyHint: 'interactive' });
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 16384;
      this.analyser.smoothingTimeConstant = 0;
      this.analyser.connect(this.ctx.destination);
      const url = URL.createObjectURL(new Blob([workletCode], { type: 'text/javascript' }));
      this.ready = this.ctx.audioWorklet
        .addModule(url)
        .then(() => {
          this.finder = new AudioWorkletNode(this.ctx, 'onair-beep-finder', { numberOfOutputs: 1 });
          this.finder.port.onmessage = (e) => {
            if (e.data.type === 'beep') this.onBeep(e.data.t);
            else if (e.data.type === 'stats') this.stats = e.data;
          };
          // A silent output keeps the node pulled by the graph.
          this.finder.connect(this.ctx.destination);
          this.source?.connect(this.finder);
        })
        .catch((err) => console.warn(`onair: no beep finder: ${err?.message || err}`));
    }
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    return true;
  }

  /** Routes `video`'s sound through the graph (once per element; a new element replaces it). */
  attach(video) {
    if (!this.ctx || this.element === video) return;
    this.detach();
    // A WebRTC track: the element keeps playing it (Chromium feeds a remote track to
    // WebAudio only while an element plays it), and the graph only listens, through a
    // silent gain that keeps it pulled, so nothing is heard twice.
    const stream = video.srcObject;
    this.remote = typeof MediaStream !== 'undefined' && stream instanceof MediaStream;
    try {
      this.source = this.remote
        ? this.ctx.createMediaStreamSource(stream)
        : this.ctx.createMediaElementSource(video);
    } catch (err) {
      console.warn(`onair: sound not measured: ${err?.message || err}`);
      return;
    }
    this.element = video;
    if (this.remote) {
      if (!this.listener) {
        this.listener = this.ctx.createAnalyser();
        this.listener.fftSize = this.analyser.fftSize;
        this.listener.smoothingTimeConstant = 0;
        const silent = this.ctx.createGain();
        silent.gain.value = 0;
        this.listener.connect(silent);
        silent.connect(this.ctx.destination);
      }
      this.source.connect(this.listener);
    } else {
      this.source.connect(this.analyser);
    }
    if (this.finder) this.source.connect(this.finder);
    this.resetStats();
  }

  detach() {
    if (this.source) this.source.disconnect();
    this.source = null;
    this.element = null;
  }

  resetStats() {
    this.stats = null;
    this.finder?.port.postMessage('reset');
  }

  /** performance.now() time at which the sample of AudioContext time `t` is heard. */
  heardAt(t) {
    const ts = this.ctx.getOutputTimestamp ? this.ctx.getOutputTimestamp() : {};
    if (ts.performanceTime > 0) return ts.performanceTime + (t - ts.contextTime) * 1000;
    // No output clock: the render time plus the latencies the context announces.
    const lat = (this.ctx.outputLatency || 0) + (this.ctx.baseLatency || 0);
    return performance.now() + (t - this.ctx.currentTime + lat) * 1000;
  }

  /** Frequency (Hz) of the strongest spectral peak between `lo` and `hi` Hz, interpolated
   *  between bins (parabola through the dB values), and its level in dBFS. */
  peak(lo = 20, hi = 20000) {
    if (!this.analyser) return null;
    const a = this.remote && this.listener ? this.listener : this.analyser;
    const db = new Float32Array(a.frequencyBinCount);
    a.getFloatFrequencyData(db);
    const bin = this.ctx.sampleRate / a.fftSize;
    const from = Math.max(1, Math.floor(lo / bin));
    const to = Math.min(db.length - 2, Math.ceil(hi / bin));
    let k = from;
    for (let i = from; i <= to; i++) if (db[i] > db[k]) k = i;
    const [l, c, r] = [db[k - 1], db[k], db[k + 1]];
    const d = l - 2 * c + r;
    const delta = d !== 0 && Number.isFinite(d) ? (0.5 * (l - r)) / d : 0;
    return { hz: (k + delta) * bin, db: c, binHz: bin };
  }
}
