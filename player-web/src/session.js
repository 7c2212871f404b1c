// What the player page does next for its stream, from what /api/streams says about it and
// how playback goes. Pure: the page feeds it facts and carries out the answer.

/** 'live' (publisher connected), 'waiting' (publisher gone, viewers held for its return),
 *  'absent' (not listed) from an /api/streams answer; 'unreachable' when there is none. */
export function streamState(list, app, name) {
  if (!Array.isArray(list)) return 'unreachable';
  const s = list.find((x) => x.app === app && x.name === name);
  if (!s) return 'absent';
  return s.live ? 'live' : 'waiting';
}

/** The same from the answer of GET /api/streams/{app}/{name}: its HTTP status (0 when the
 *  server did not answer) and its JSON body. */
export function oneStreamState(status, body) {
  if (status === 404) return 'absent';
  if (status !== 200 || !body) return 'unreachable';
  return body.live ? 'live' : 'waiting';
}

/** After this long without the playhead moving while the stream is live, start afresh. */
export const STALL_MS = 8000;

/**
 * @param {object} f
 * @param {'live'|'waiting'|'absent'|'unreachable'} f.api
 * @param {boolean} f.running    an engine exists
 * @param {boolean} f.playing    the playhead moved in the last second
 * @param {number} f.now
 * @param {number} f.retryAt     no (re)start before this (after an engine error)
 * @param {number} f.lastProgressAt  last time the playhead moved (or the engine started)
 * @returns {{action: 'start'|'stop'|'restart'|'none', banner: null|'offline'|'connecting'|'unreachable'}}
 */
export function nextStep(f) {
  if (f.api === 'waiting' || f.api === 'absent') {
    return { action: f.running ? 'stop' : 'none', banner: 'offline' };
  }
  if (f.api === 'unreachable') {
    // Keep playing what still flows; say so only when nothing does.
    return { action: 'none', banner: f.running && f.playing ? null : 'unreachable' };
  }
  if (!f.running) {
    return { action: f.now >= f.retryAt ? 'start' : 'none', banner: 'connecting' };
  }
  if (f.now - f.lastProgressAt > STALL_MS) return { action: 'restart', banner: 'connecting' };
  return { action: 'none', banner: f.playing ? null : 'connecting' };
}

/** Retry delay after the n-th consecutive engine failure: 0.5 s doubling up to 5 s. */
export function backoffMs(failures) {
  return Math.min(5000, 500 * 2 ** Math.max(0, failures - 1));
}
