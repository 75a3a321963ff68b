/**
 * "What if" variants of src/ behaviour, applied by patching prototypes inside the bench process
 * only (src/ is not changed). Used to measure the effect of a proposed fix next to the shipped code.
 */
import { OutputBatcher } from '../../src/session/outputBatcher';

type BatcherInternals = { timer: unknown; flush(): void };

const originalPush = OutputBatcher.prototype.push;
let active = false;

/**
 * Proposed OutputBatcher fix: flush at setImmediate (the end of the current event-loop turn)
 * instead of a 4 ms timer. Chunks that arrive in the same turn are still coalesced into one write,
 * and the high-water pause is unchanged; an isolated keystroke echo is no longer held for 4 ms.
 */
export function useImmediateFlush(on: boolean): void {
  if (on === active) return;
  active = on;
  if (!on) {
    OutputBatcher.prototype.push = originalPush;
    return;
  }
  OutputBatcher.prototype.push = function (this: OutputBatcher, chunk: Buffer): void {
    const self = this as unknown as BatcherInternals;
    const hadTimer = self.timer !== undefined;
    originalPush.call(this, chunk);
    if (!hadTimer && self.timer !== undefined) {
      clearTimeout(self.timer as NodeJS.Timeout);
      const marker = setImmediate(() => {
        if (self.timer === marker) self.flush();
      });
      self.timer = marker;
    }
  };
}

import { Client } from 'ssh2';

let originalConnect = Client.prototype.connect;
let noDelay = false;

/**
 * Proposed SshConnection fix: `client.setNoDelay(true)` on every connection (OpenSSH sets
 * TCP_NODELAY for interactive sessions too). Without it Nagle holds a channel's second request
 * (exec after channel-open) until the server's delayed ACK.
 */
export function useNoDelay(on: boolean): void {
  if (on === noDelay) return;
  noDelay = on;
  if (!on) {
    Client.prototype.connect = originalConnect;
    return;
  }
  originalConnect = Client.prototype.connect;
  const wrapped = originalConnect;
  Client.prototype.connect = function (this: Client, ...args: Parameters<Client['connect']>) {
    const result = wrapped.apply(this, args);
    this.setNoDelay(true);
    return result;
  } as Client['connect'];
}
