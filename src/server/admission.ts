import { CancelledError, MemometerError, ResourceExhaustedError } from '../errors.js';
import { observeLoad, recordRefusal } from '../telemetry/metrics.js';

/** Why a queued measurement left the queue: the abort's typed reason (e.g. DEADLINE_EXCEEDED), else CANCELLED. */
const leftQueue = (signal: AbortSignal) =>
  signal.reason instanceof MemometerError ? signal.reason : new CancelledError('cancelled while queued');

/**
 * Bounded concurrency with a bounded queue: at most `maxRunning` measurements run, at most
 * `maxQueued` wait; anything beyond is refused at once (RESOURCE_EXHAUSTED) rather than piling up.
 */
export class Admission {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly maxRunning: number,
    private readonly maxQueued: number,
  ) {
    observeLoad(this); // memometer.queue.depth, memometer.measurements.running
  }

  get load(): { running: number; queued: number } {
    return { running: this.running, queued: this.waiting.length };
  }

  /** Refuses synchronously when full; otherwise resolves with a release function once a slot is free. */
  enter(signal: AbortSignal): Promise<() => void> {
    if (this.running >= this.maxRunning && this.waiting.length >= this.maxQueued) {
      recordRefusal('queue_full');
      throw new ResourceExhaustedError(
        `the server is busy: ${this.running} measurements running and ${this.waiting.length} queued (limits ${this.maxRunning} and ${this.maxQueued}); retry later`,
      );
    }
    const release = () => {
      this.running--;
      this.waiting.shift()?.();
    };
    if (this.running < this.maxRunning) {
      this.running++;
      return Promise.resolve(release);
    }
    if (signal.aborted) return Promise.reject(leftQueue(signal));
    return new Promise((resolve, reject) => {
      const start = () => {
        signal.removeEventListener('abort', leave);
        this.running++;
        resolve(release);
      };
      const leave = () => {
        this.waiting.splice(this.waiting.indexOf(start), 1);
        reject(leftQueue(signal));
      };
      this.waiting.push(start);
      signal.addEventListener('abort', leave, { once: true });
    });
  }
}
