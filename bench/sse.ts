/**
 * Sync server fan-out: hold N (10,000) SSE streams of one account on one server process, then
 * write one blob and time its delivery to every stream. Streams are held by raw-socket client
 * processes (bench/sse/streams.cjs), 5,000 per process, so no process needs more than ~5,000 fds
 * (`ulimit -n` is reported in the machine facts). Memory per stream is the server's RSS growth
 * (and heap growth) divided by the number of streams.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as readline from 'node:readline';
import { ProbedServer } from './sync/server';
import { Summary, round, sleep, summarize, wallMs } from './lib/util';
import { newSessionId } from '../src/common/sessionId';

export interface SseResult {
  streams: number;
  requested: number;
  failedToOpen: number;
  clientProcesses: number;
  /** Loopback source addresses the streams came from (the per-address caps stay on). */
  sourceAddresses: number;
  openSeconds: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  heapBeforeBytes: number;
  heapAfterBytes: number;
  bytesPerStream: number;
  heapBytesPerStream: number;
  writes: number;
  /** PUT sent -> event received, over every stream and every write. */
  delivery: Summary;
  /** Server: PUT received -> first / last stream write. */
  serverFirstWrite: Summary;
  serverLastWrite: Summary;
  missing: number;
  perWrite: { p50: number; p99: number; max: number; serverLastWrite?: number }[];
}

/**
 * The server runs with its per-address limits at their defaults (32 streams and 64 connections per
 * address, 10 new accounts per address an hour), so the streams come from many loopback addresses,
 * as many clients would.
 */
const STREAMS_PER_ADDRESS = 32;

interface Holder {
  child: ChildProcess;
  lines: AsyncIterableIterator<string>;
}

function startHolder(port: number, token: string, count: number, firstIndex: number): Holder {
  const args = [join(__dirname, 'sse', 'streams.cjs'), String(port), token, String(count), '100', String(STREAMS_PER_ADDRESS), String(firstIndex)];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines };
}

async function nextJson(holder: Holder): Promise<Record<string, unknown>> {
  const { value, done } = await holder.lines.next();
  if (done) throw new Error('stream holder exited');
  return JSON.parse(value) as Record<string, unknown>;
}

async function serverMemory(server: ProbedServer): Promise<{ rss: number; heap: number }> {
  const file = join(server.dir, 'probe.json.mem');
  const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
  server.child.kill('SIGUSR2');
  // The probe writes the file in place: on a loaded machine we may read it half written, so wait
  // for a new text that parses.
  for (let i = 0; i < 500; i++) {
    await sleep(20);
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (text === before) continue;
    try {
      const memory = (JSON.parse(text) as { memory: { heapUsed: number } }).memory;
      return { rss: server.rssBytes(), heap: memory.heapUsed };
    } catch {
      /* half written: read again */
    }
  }
  throw new Error('the server probe wrote no memory figures within 10 s');
}

export async function sseFanout(options: { quick: boolean; log: (line: string) => void }): Promise<SseResult> {
  const requested = options.quick ? 2_000 : 10_000;
  const perProcess = 5_000;
  const writes = options.quick ? 3 : 5;
  // The per-address limits stay on (restated: ProbedServer lifts the new-account one for other benches).
  const server = await ProbedServer.start(['--heartbeat-ms', '600000', '--max-new-accounts-per-ip', '10', '--max-streams-per-ip', '32', '--max-connections-per-ip', '64']);
  const token = randomBytes(24).toString('base64url');
  const port = Number(new URL(server.url).port);
  const holders: Holder[] = [];
  try {
    await sleep(300);
    const before = await serverMemory(server);
    const openStart = performance.now();
    let open = 0;
    let failed = 0;
    for (let first = 0; first < requested; first += perProcess) holders.push(startHolder(port, token, Math.min(perProcess, requested - first), first));
    for (const holder of holders) {
      const message = await nextJson(holder);
      open += Number(message.open);
      failed += Number(message.failed);
    }
    const openSeconds = (performance.now() - openStart) / 1000;
    options.log(`  ${open} streams open (${failed} failed) in ${openSeconds.toFixed(1)} s`);
    await sleep(1000);
    const after = await serverMemory(server);
    const slotId = newSessionId();
    const delivery: number[] = [];
    const sentAt: number[] = [];
    let missing = 0;
    const perWrite: SseResult['perWrite'] = [];
    let version: number | undefined;
    for (let w = 0; w < writes; w++) {
      const nonce = `N${randomBytes(12).toString('hex').slice(0, 19)}`; // 20 base64 characters
      for (const holder of holders) holder.child.stdin!.write(`${JSON.stringify({ cmd: 'expect', nonce, timeoutMs: 30_000 })}\n`);
      await sleep(100);
      const t0 = wallMs();
      sentAt.push(t0);
      const response = await fetch(`${server.url}/v1/blobs/${slotId}`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...(version === undefined ? { 'If-None-Match': '*' } : { 'If-Match': `"${version}"` }) },
        body: JSON.stringify({ data: `QUJD${nonce}` }),
      });
      if (!response.ok) throw new Error(`PUT answered ${response.status}: ${await response.text()}`);
      version = ((await response.json()) as { version: number }).version;
      const thisWrite: number[] = [];
      for (const holder of holders) {
        const message = await nextJson(holder);
        for (const at of message.times as number[]) thisWrite.push(at - t0);
        missing += Number(message.missing);
      }
      delivery.push(...thisWrite);
      const w1 = summarize(thisWrite);
      perWrite.push({ p50: w1.p50, p99: w1.p99, max: w1.max });
      options.log(`  write ${w + 1}/${writes}: delivered p50 ${summarize(delivery).p50.toFixed(1)} ms, p99 ${summarize(delivery).p99.toFixed(1)} ms so far`);
      await sleep(300);
    }
    for (const holder of holders) holder.child.stdin!.write(`${JSON.stringify({ cmd: 'close' })}\n`);
    await Promise.all(holders.map((h) => new Promise((resolve) => (h.child.exitCode !== null ? resolve(null) : h.child.once('exit', resolve)))));
    holders.length = 0;
    const records = (await server.stop()).filter((r) => r.slotId === slotId && r.receivedAt !== undefined);
    records.forEach((r, i) => perWrite[i] && (perWrite[i].serverLastWrite = round(r.lastWrite - r.receivedAt!)));
    return {
      perWrite,
      streams: open,
      requested,
      failedToOpen: failed,
      clientProcesses: Math.ceil(requested / perProcess),
      sourceAddresses: Math.ceil(requested / STREAMS_PER_ADDRESS),
      openSeconds: round(openSeconds, 2),
      rssBeforeBytes: before.rss,
      rssAfterBytes: after.rss,
      heapBeforeBytes: before.heap,
      heapAfterBytes: after.heap,
      bytesPerStream: Math.round((after.rss - before.rss) / Math.max(1, open)),
      heapBytesPerStream: Math.round((after.heap - before.heap) / Math.max(1, open)),
      writes,
      delivery: summarize(delivery),
      serverFirstWrite: summarize(records.map((r) => r.firstWrite - r.receivedAt!)),
      serverLastWrite: summarize(records.map((r) => r.lastWrite - r.receivedAt!)),
      missing,
    };
  } finally {
    for (const holder of holders) holder.child.kill('SIGKILL');
    await server.stop().catch(() => undefined);
  }
}
