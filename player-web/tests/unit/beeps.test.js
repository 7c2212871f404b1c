import { beforeAll, describe, expect, it } from 'vitest';

// The worklet runs in an AudioWorkletGlobalScope; these are the parts of it the finder uses.
const RATE = 48_000;
const QUANTUM = 128;
let Finder;
beforeAll(async () => {
  globalThis.sampleRate = RATE;
  globalThis.currentTime = 0;
  globalThis.AudioWorkletProcessor = class {
    constructor() {
      this.port = { posted: [], postMessage: (m) => this.port.posted.push(m) };
    }
  };
  globalThis.registerProcessor = (_name, cls) => {
    Finder = cls;
  };
  await import('../../src/beeps.worklet.js');
});

/** The onair test pattern's sound at `gain`: a 1 kHz tone at -20 dBFS, and a 100 ms 2 kHz
 *  beep at -6 dBFS on top of it from sample 0 of each second. */
function pattern(sample, gain) {
  const t = sample / RATE;
  const tone = 0.1 * Math.sin(2 * Math.PI * 1000 * t);
  const beep = sample % RATE < RATE / 10 ? 0.5 * Math.sin(2 * Math.PI * 2000 * t) : 0;
  return gain * (tone + beep);
}

/** Feeds `seconds` of the pattern from `fromSample` and returns the last stats posted. */
function play(finder, fromSample, seconds, gain) {
  const out = [[new Float32Array(QUANTUM)]];
  let s = fromSample;
  for (; s < fromSample + seconds * RATE; s += QUANTUM) {
    const x = new Float32Array(QUANTUM);
    for (let i = 0; i < QUANTUM; i++) x[i] = pattern(s + i, gain);
    globalThis.currentTime = s / RATE;
    finder.process([[x]], out);
  }
  const stats = finder.port.posted.filter((m) => m.type === 'stats');
  return { stats: stats[stats.length - 1], next: s };
}

describe('the beep finder', () => {
  it("measures the tone's level, not a beep's, wherever a reset lands", () => {
    const toneRms = 0.1 / Math.SQRT2;
    for (const resetAt of [0, 0.02, 0.05, 0.5]) {
      const finder = new Finder();
      const { next } = play(finder, 0, 2, 1);
      const loud = finder.port.posted.filter((m) => m.type === 'stats').pop().toneRms;
      expect(loud).toBeCloseTo(toneRms, 2);
      // The volume halves, and the reset falls `resetAt` s into a second (0: on a beep).
      const from = Math.ceil(next / RATE) * RATE + resetAt * RATE;
      finder.reset();
      finder.port.posted = [];
      const { stats } = play(finder, from, 1.6, 0.5);
      expect(stats.toneRms / loud).toBeGreaterThan(0.45);
      expect(stats.toneRms / loud).toBeLessThan(0.55);
      expect(stats.dropouts).toBe(0);
    }
  });

  it('finds one beep a second and no dropout in the whole pattern', () => {
    const finder = new Finder();
    play(finder, 0, 4, 1);
    const beeps = finder.port.posted.filter((m) => m.type === 'beep').map((m) => m.t);
    // The first second goes to learning the tone's level.
    expect(beeps.map((t) => Math.round(t * 1000))).toEqual([1000, 2000, 3000]);
    expect(finder.port.posted.filter((m) => m.type === 'stats').pop().dropouts).toBe(0);
  });

  it('counts a gap in the sound as a dropout', () => {
    const finder = new Finder();
    const { next } = play(finder, 0, 2, 1);
    play(finder, next, 0.2, 0);
    const { stats } = play(finder, next + 0.2 * RATE, 1, 1);
    expect(stats.dropouts).toBe(1);
    expect(stats.dropoutMs).toBeGreaterThan(100);
  });
});
