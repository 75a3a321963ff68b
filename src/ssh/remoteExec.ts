import { randomBytes } from 'node:crypto';
import { quoteForMessage } from '../common/displayText';
import type { Client, ClientChannel, ExecOptions, PseudoTtyOptions } from 'ssh2';
import { MAX_REMOTE_COMMAND_BYTES, wrapScript } from '../common/quoting';
import { ReasonError } from '../common/reasonError';

/** `channel-refused`: the host answered the channel open with a failure (sshd's MaxSessions, for one). */
export class RemoteCommandError extends ReasonError<'too-large' | 'channel' | 'channel-refused' | 'timeout' | 'no-marker'> {
  override readonly name = 'RemoteCommandError';
}

/**
 * The error for a channel that did not open. ssh2 marks a refusal by the host (CHANNEL_OPEN_FAILURE,
 * or a close in its place) with an SSH `reason` property; anything else (not connected, no answer)
 * has none.
 */
export function channelOpenError(error: Error): RemoteCommandError {
  return new RemoteCommandError('reason' in error ? 'channel-refused' : 'channel', `could not open a channel: ${error.message}`);
}

export interface ScriptResult {
  /** What the script printed after our start marker: banners and rc-file noise are cut off. */
  output: string;
  exitCode: number | null;
}

const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** Opens an exec channel for a wrapped script; with `pty`, the channel is a terminal. */
export function openScriptChannel(client: Client, script: string, pty?: PseudoTtyOptions): Promise<ClientChannel> {
  const command = wrapScript(script);
  if (Buffer.byteLength(command) > MAX_REMOTE_COMMAND_BYTES) {
    return Promise.reject(new RemoteCommandError('too-large', `remote command of ${command.length} bytes exceeds ${MAX_REMOTE_COMMAND_BYTES}`));
  }
  return new Promise((resolve, reject) => {
    const callback = (error: Error | undefined, channel: ClientChannel): void => {
      if (error) reject(channelOpenError(error));
      else resolve(channel);
    };
    // pty-req goes out with the exec, not after its reply (our ssh2 patch; OpenSSH does the same):
    // one round trip less per terminal. A refused pty still fails the open and closes the channel.
    if (pty) client.exec(command, { pty, pipeline: true } as ExecOptions, callback);
    else client.exec(command, callback);
  });
}

/**
 * Runs a short sh script without a pty and returns what it printed after a one-time marker, so a
 * banner or a noisy .bashrc never reaches a parser.
 */
export async function runScript(client: Client, script: string, timeoutMs = 15_000): Promise<ScriptResult> {
  const marker = `__tether_${randomBytes(8).toString('hex')}__`;
  const channel = await openScriptChannel(client, `echo ${marker}\n${script}`);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let exitCode: number | null = null;
    const timer = setTimeout(() => {
      channel.close();
      reject(new RemoteCommandError('timeout', `remote command did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    channel.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_OUTPUT_BYTES) chunks.push(chunk);
    });
    channel.stderr.resume();
    channel.on('exit', (code: number | null) => {
      exitCode = code;
    });
    channel.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const start = text.indexOf(`${marker}\n`);
      if (start < 0) {
        reject(new RemoteCommandError('no-marker', `remote shell did not run our command (exit ${exitCode}); output: ${quoteForMessage(text, 200)}`));
        return;
      }
      resolve({ output: text.slice(start + marker.length + 1), exitCode });
    });
  });
}
