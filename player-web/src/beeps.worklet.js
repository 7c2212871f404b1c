// Runs on the audio rendering thread (AudioWorkletGlobalScope), on what the player is about
// to play: finds the onset of each beep of the onair test pattern (a 2 kHz burst at -6 dBFS
// over a 1 kHz tone at -20 dBFS, on sample 0 of each second) and counts dropouts (any ~50 ms
// window whose RMS falls below a quarter of the tone's). It only measures and posts what it
// finds; its output is silence, so it never changes what is heard.

const WINDOW_QUANTA = 19; // 19 × 128 samples ≈ 50 ms at 48 kHz
const DROPOUT_RATIO = 0.25; // -12 dB under the running level
const BEEP_RATIO = 3; // a beep's peaks are about 6× the tone's
// The tone's level is first taken as the median of this many sounding quanta (~340 ms): a
// 100 ms beep fills under a third of them, so the median is the tone's wherever a reset lands.
// Taking the first quantum instead locked the level at a beep's when a reset fell on one, and
// every tone quantum after it then read as a dropout, which stops the level from following.
const SETTLE_QUANTA = 128;
const SILENCE_RMS = 1e-4;

function median(values) {
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

class BeepFinder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.reset();
    this.port.onmessage = (e) => {
      if (e.data === 'reset') this.reset();
    };
  }

  reset() {
    this.peakLevel = 0;
    this.rmsLevel = 0;
    this.settlePeaks = [];
    this.settleRms = [];
    this.lastOnset = -1;
    this.win = new Float64Array(WINDOW_QUANTA);
    this.wi = 0;
    this.wsum = 0;
    this.wn = 0;
    this.dropping = false;
    this.dropouts = 0;
    this.dropoutMs = 0;
    this.minRatio = null;
    this.quanta = 0;
    this.beeps = 0;
    this.since = currentTime;
  }

  process(inputs, outputs) {
    const x = inputs[0] && inputs[0][0];
    for (const out of outputs) for (const ch of out) ch.fill(0);
    if (!x || x.length === 0) return true;
    let peak = 0;
    let ss = 0;
    for (let i = 0; i < x.length; i++) {
      const a = Math.abs(x[i]);
      if (a > peak) peak = a;
      ss += x[i] * x[i];
    }
    this.quanta++;
    const beepThreshold = Math.max(BEEP_RATIO * this.peakLevel, 0.01);
    if (this.peakLevel > 0 && peak > beepThreshold && currentTime - this.lastOnset > 0.5) {
      let i = 0;
      while (i < x.length && Math.abs(x[i]) <= beepThreshold) i++;
      this.lastOnset = currentTime + i / sampleRate;
      this.beeps++;
      this.port.postMessage({ type: 'beep', t: this.lastOnset });
    }
    const rms = Math.sqrt(ss / x.length);
    // The tone's level: follows quanta that are not part of a beep and not in a dropout.
    const isBeep = this.peakLevel > 0 && peak >= 2 * this.peakLevel;
    if (this.peakLevel === 0) {
      if (rms > SILENCE_RMS) {
        this.settlePeaks.push(peak);
        this.settleRms.push(rms);
      }
      if (this.settleRms.length >= SETTLE_QUANTA) {
        this.peakLevel = median(this.settlePeaks);
        this.rmsLevel = median(this.settleRms);
        this.settlePeaks = [];
        this.settleRms = [];
      }
    } else if (!isBeep && !this.dropping) {
      this.peakLevel += (peak - this.peakLevel) * (peak < this.peakLevel ? 0.02 : 0.01);
      this.rmsLevel += (rms - this.rmsLevel) * (rms < this.rmsLevel ? 0.005 : 0.01);
    }
    this.wsum += ss - this.win[this.wi];
    this.win[this.wi] = ss;
    this.wi = (this.wi + 1) % WINDOW_QUANTA;
    if (++this.wn >= WINDOW_QUANTA && this.rmsLevel > 1e-4) {
      const ratio = Math.sqrt(Math.max(0, this.wsum) / (WINDOW_QUANTA * x.length)) / this.rmsLevel;
      if (this.minRatio === null || ratio < this.minRatio) this.minRatio = ratio;
      if (ratio < DROPOUT_RATIO) {
        if (!this.dropping) this.dropouts++;
        this.dropping = true;
        this.dropoutMs += (1000 * x.length) / sampleRate;
      } else if (ratio > 2 * DROPOUT_RATIO) {
        this.dropping = false;
      }
    }
    if (this.quanta % 64 === 0) {
      this.port.postMessage({
        type: 'stats',
        seconds: currentTime - this.since,
        quanta: this.quanta,
        beeps: this.beeps,
        dropouts: this.dropouts,
        dropoutMs: this.dropoutMs,
        minWindowRatio: this.minRatio,
        toneRms: this.rmsLevel,
        tonePeak: this.peakLevel,
      });
    }
    return true;
  }
}

registerProcessor('onair-beep-finder', BeepFinder);
