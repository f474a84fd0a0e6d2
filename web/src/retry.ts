/**
 * Backoff with jitter, shared by the stream and focus reconnects.
 *
 *   backoffDelay(attempt, { baseMs: 250, maxMs: 1000 })  // attempt 1, 2, 3 … → ms to wait
 *
 * The delay doubles from `baseMs` up to `maxMs`, then a random 0–`jitter` share of it is taken
 * off, so clients that lost the same server at the same moment do not all come back at once,
 * and no wait is ever longer than `maxMs`.
 */
export interface Backoff {
  baseMs: number;
  maxMs: number;
  jitter?: number; // share of the delay taken off at random, 0..1 (default 0.25)
}

export function backoffDelay(attempt: number, { baseMs, maxMs, jitter = 0.25 }: Backoff, random = Math.random): number {
  const full = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(full * (1 - jitter * random()));
}
