/**
 * The sync service at scale (issue 21): two real server processes (dist/server.js as esbuild bundles
 * it) on one throwaway PostgreSQL cluster (the integration tests' fixture). 50 accounts each hold 10
 * SSE streams on instance B; 1 KiB blobs are PUT to new slots on instance A, by one writer and then by
 * 16 concurrent writers. Delivery is timed from sending the PUT to the event arriving on the last of
 * the account's 10 streams. Rate and per-address limits are raised (server flags) so they do not count.
 *
 * The load generator is lean on purpose (2 cores shared with PostgreSQL and both servers): raw http
 * for PUTs, raw sockets and a frame scanner for SSE, all in this process.
 *
 * Where the time goes is read from PostgreSQL itself (pg_stat_database commits, pg_stat_wal syncs)
 * and from /proc (CPU seconds of each server, the PostgreSQL processes and this process).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { buildServer } from '../test/support/bundle';
import { type PostgresCluster, startPostgresCluster } from '../test/support/postgres';
import { serverBundle, SyncServerProcess } from '../test/support/syncServer';
import { newSessionId } from '../src/common/sessionId';
import { type Summary, round, sleep, summarize, wallMs } from './lib/util';

export interface ScalePhase {
  label: string;
  writers: number;
  writes: number;
  seconds: number;
  writesPerSecond: number;
  /** PUT sent -> event on the last of the account's streams on instance B. */
  delivery: Summary;
  /** PUT sent -> 201 received from instance A. */
  ack: Summary;
  /** Writes not seen on all of the account's streams within the wait after the phase. */
  lost: number;
  failedWrites: number;
  /** Streams that saw event ids go backwards (per-account order broken). */
  orderViolations: number;
  perWrite: { commits: number; walSyncs: number; walBytes: number };
  cpuMsPerWrite: { serverA: number; serverB: number; postgres: number; bench: number };
  loadAverage1m: number;
}

export interface ScaleVariant {
  /** `baseline`: src/server as of BASELINE_COMMIT; `tether`: this tree. */
  name: 'baseline' | 'tether';
  commit: string;
  phases: ScalePhase[];
}

export interface ScaleResult {
  accounts: number;
  streamsPerAccount: number;
  blobBytes: number;
  postgres: { version: string; settings: Record<string, string> };
  variants: ScaleVariant[];
}

/**
 * The server as issue 21 measured it (one transaction per write, NOTIFY with keys only), built from
 * git so that the baseline runs on the same machine under the same load as this tree.
 * TETHER_SCALE_BASELINE overrides it.
 */
const BASELINE_COMMIT = process.env.TETHER_SCALE_BASELINE ?? '21d7c96';
const repoRoot = join(__dirname, '..');

/** Bundles src/server of `commit` (git archive; src/server imports nothing outside itself). */
async function buildServerAt(commit: string, dir: string): Promise<string> {
  const tree = join(dir, 'tree');
  mkdirSync(tree, { recursive: true });
  const archive = execFileSync('git', ['archive', commit, 'src/server'], { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-C', tree], { input: archive });
  return buildServer(join(dir, 'baseline'), tree);
}

const ACCOUNTS = 50;
const STREAMS_PER_ACCOUNT = 10;
const BLOB_BYTES = 1024;
/** Every limit the server has, raised far above the load so that only the store is measured. */
const RAISED_LIMITS = [
  '--rate', '1000000', '--burst', '1000000', '--ip-rate', '1000000', '--ip-burst', '1000000',
  '--max-slots', '5000', '--max-streams', '100000', '--max-streams-per-ip', '100000',
  '--max-connections-per-ip', '100000', '--max-new-accounts-per-ip', '100000', '--heartbeat-ms', '600000',
];

class ServerInstance extends SyncServerProcess {
  static start(serverJs: string, databaseUrl: string): Promise<ServerInstance> {
    return ServerInstance.launch({ serverJs, args: ['--port', '0', '--database-url', databaseUrl, ...RAISED_LIMITS] });
  }

  cpuMs(): number {
    return procCpuMs(this.child.pid!);
  }
}

const TICK_MS = 1000 / 100; // USER_HZ on Linux

/** utime + stime of a process in ms, 0 once it is gone. */
function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** One SSE stream on raw sockets: counts `blob` events per slot, checks ids only rise. */
class StreamReader {
  private buffer = '';
  private lastId = -1;
  orderViolations = 0;
  opened: Promise<void>;

  constructor(port: number, token: string, onBlob: (slotId: string, at: number) => void) {
    const socket: Socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.socket = socket;
    socket.setEncoding('latin1');
    let headersDone = false;
    this.opened = new Promise((resolve, reject) => {
      socket.once('connect', () => socket.write(`GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`));
      socket.on('error', reject);
      socket.on('data', (chunk: string) => {
        const at = wallMs();
        this.buffer += chunk;
        if (!headersDone) {
          const end = this.buffer.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!this.buffer.startsWith('HTTP/1.1 200')) return reject(new Error(`stream refused: ${this.buffer.split('\r\n')[0]}`));
          headersDone = true;
          resolve();
          this.buffer = this.buffer.slice(end + 4);
        }
        // Chunked transfer framing lines ("5a3\r\n") sit between SSE frames; they never look like a field.
        let end: number;
        while ((end = this.buffer.indexOf('\n\n')) >= 0) {
          const frame = this.buffer.slice(0, end);
          this.buffer = this.buffer.slice(end + 2);
          if (!frame.includes('event: blob')) continue;
          const idAt = frame.indexOf('id: ');
          const id = Number(frame.slice(idAt + 4, frame.indexOf('\n', idAt)));
          if (id <= this.lastId) this.orderViolations += 1;
          this.lastId = id;
          const slotAt = frame.indexOf('"slotId":"');
          if (slotAt >= 0) onBlob(frame.slice(slotAt + 10, slotAt + 36), at);
        }
      });
    });
  }

  private readonly socket: Socket;

  close(): void {
    this.socket.destroy();
  }
}

interface Pending {
  sentAt: number;
  remaining: number;
  deliveredAt?: number;
  failed?: boolean;
}

async function pgCounters(client: Client, database: string): Promise<{ commits: number; walSyncs: number; walBytes: number }> {
  const db = await client.query<{ xact_commit: string }>('SELECT xact_commit FROM pg_stat_database WHERE datname = $1', [database]);
  const wal = await client.query<{ wal_sync: string; wal_bytes: string }>('SELECT wal_sync, wal_bytes FROM pg_stat_wal');
  return { commits: Number(db.rows[0].xact_commit), walSyncs: Number(wal.rows[0].wal_sync), walBytes: Number(wal.rows[0].wal_bytes) };
}

async function postgresPids(client: Client): Promise<number[]> {
  const result = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity');
  return result.rows.map((row) => row.pid);
}

export async function scale(options: { quick: boolean; log: (line: string) => void }): Promise<ScaleResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-bench-scale-'));
  let cluster: PostgresCluster | undefined;
  try {
    cluster = await startPostgresCluster();
    const baselineJs = await buildServerAt(BASELINE_COMMIT, dir);
    const serverJs = await serverBundle();
    const variants: ScaleVariant[] = [];
    let postgres: ScaleResult['postgres'] | undefined;
    // Baseline first, then this tree, each on a fresh database of the same cluster.
    for (const [name, js, commit] of [['baseline', baselineJs, BASELINE_COMMIT], ['tether', serverJs, 'this tree']] as const) {
      options.log(`  -- ${name} (${commit})`);
      const run = await runVariant(cluster, js, options);
      postgres = run.postgres;
      variants.push({ name, commit, phases: run.phases });
    }
    return { accounts: ACCOUNTS, streamsPerAccount: STREAMS_PER_ACCOUNT, blobBytes: BLOB_BYTES, postgres: postgres!, variants };
  } finally {
    cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runVariant(
  cluster: PostgresCluster,
  serverJs: string,
  options: { quick: boolean; log: (line: string) => void },
): Promise<{ postgres: ScaleResult['postgres']; phases: ScalePhase[] }> {
  const { log } = options;
  const servers: ServerInstance[] = [];
  const streams: StreamReader[] = [];
  let stats: Client | undefined;
  try {
    const databaseUrl = await cluster.createDatabase();
    const database = new URL(databaseUrl).pathname.slice(1);
    servers.push(await ServerInstance.start(serverJs, databaseUrl), await ServerInstance.start(serverJs, databaseUrl));
    const [a, b] = servers;
    stats = new Client({ connectionString: databaseUrl });
    await stats.connect();
    const version = (await stats.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version;
    const settings: Record<string, string> = {};
    for (const name of ['synchronous_commit', 'fsync', 'wal_sync_method', 'commit_delay', 'shared_buffers', 'max_connections']) {
      settings[name] = (await stats.query<Record<string, string>>(`SHOW ${name}`)).rows[0][name];
    }

    const tokens = Array.from({ length: ACCOUNTS }, () => randomBytes(24).toString('base64url'));
    const pending = new Map<string, Pending>();
    const onBlob = (slotId: string, at: number): void => {
      const entry = pending.get(slotId);
      if (!entry) return;
      entry.remaining -= 1;
      if (entry.remaining === 0) entry.deliveredAt = at;
    };
    for (const token of tokens) {
      for (let i = 0; i < STREAMS_PER_ACCOUNT; i++) streams.push(new StreamReader(b.port, token, onBlob));
    }
    await Promise.all(streams.map((stream) => stream.opened));
    log(`  ${streams.length} streams open on instance B (${ACCOUNTS} accounts x ${STREAMS_PER_ACCOUNT})`);

    const blobs = Array.from({ length: 8 }, () => JSON.stringify({ data: randomBytes(BLOB_BYTES).toString('base64') }));
    const authHeaders = tokens.map((token) => `Bearer ${token}`);
    // Each writer keeps one connection (as a device does); new slots, so every PUT is a create.
    const put = (agent: Agent, account: number, slotId: string, body: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1', port: a.port, method: 'PUT', path: `/v1/blobs/${slotId}`, agent,
            headers: { Authorization: authHeaders[account], 'If-None-Match': '*', 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
          },
          (res) => {
            res.resume();
            res.once('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.once('error', reject);
        req.end(body);
      });

    const phases: ScalePhase[] = [];
    const runPhase = async (label: string, writers: number, writes: number): Promise<ScalePhase> => {
      const pgPids = await postgresPids(stats!);
      const before = await pgCounters(stats!, database);
      const cpu0 = { a: a.cpuMs(), b: b.cpuMs(), pg: pgPids.reduce((s, pid) => s + procCpuMs(pid), 0), bench: process.cpuUsage() };
      const entries: Pending[] = [];
      const acks: number[] = [];
      let next = 0;
      let failed = 0;
      const started = wallMs();
      await Promise.all(
        Array.from({ length: writers }, async () => {
          const agent = new Agent({ keepAlive: true, maxSockets: 1 });
          while (next < writes) {
            const index = next++;
            const slotId = newSessionId();
            const entry: Pending = { sentAt: wallMs(), remaining: STREAMS_PER_ACCOUNT };
            pending.set(slotId, entry);
            entries.push(entry);
            const status = await put(agent, index % ACCOUNTS, slotId, blobs[index % blobs.length]);
            if (status !== 201) {
              failed += 1;
              entry.failed = true;
              pending.delete(slotId);
              if (failed <= 3) log(`  PUT answered ${status}`);
              continue;
            }
            acks.push(wallMs() - entry.sentAt);
          }
          agent.destroy();
        }),
      );
      const seconds = (wallMs() - started) / 1000;
      // Delivery may trail the last ack; wait (bounded) for the stragglers before counting losses.
      const deadline = Date.now() + 15_000;
      while (entries.some((e) => e.deliveredAt === undefined && !e.failed) && Date.now() < deadline) await sleep(20);
      const after = await pgCounters(stats!, database);
      const cpuBench = process.cpuUsage(cpu0.bench);
      const delivered = entries.filter((e) => e.deliveredAt !== undefined);
      const done = writes - failed;
      const phase: ScalePhase = {
        label,
        writers,
        writes: done,
        seconds: round(seconds, 2),
        writesPerSecond: round(done / seconds, 1),
        delivery: summarize(delivered.map((e) => e.deliveredAt! - e.sentAt)),
        ack: summarize(acks),
        lost: done - delivered.length,
        failedWrites: failed,
        orderViolations: streams.reduce((s, stream) => s + stream.orderViolations, 0),
        perWrite: {
          commits: round((after.commits - before.commits) / done, 2),
          walSyncs: round((after.walSyncs - before.walSyncs) / done, 3),
          walBytes: Math.round((after.walBytes - before.walBytes) / done),
        },
        cpuMsPerWrite: {
          serverA: round((a.cpuMs() - cpu0.a) / done, 3),
          serverB: round((b.cpuMs() - cpu0.b) / done, 3),
          postgres: round((pgPids.reduce((s, pid) => s + procCpuMs(pid), 0) - cpu0.pg) / done, 3),
          bench: round((cpuBench.user + cpuBench.system) / 1000 / done, 3),
        },
        loadAverage1m: round(readLoad(), 2),
      };
      pending.clear();
      log(
        `  ${label}: ${phase.writesPerSecond} writes/s, delivery p50 ${phase.delivery.p50} / p99 ${phase.delivery.p99} ms, ack p50 ${phase.ack.p50} ms, ` +
          `lost ${phase.lost}, failed ${failed}; per write ${phase.perWrite.commits} commits, ${phase.perWrite.walSyncs} WAL syncs; ` +
          `CPU ms/write A ${phase.cpuMsPerWrite.serverA} B ${phase.cpuMsPerWrite.serverB} PG ${phase.cpuMsPerWrite.postgres} bench ${phase.cpuMsPerWrite.bench}`,
      );
      return phase;
    };

    // Warm-up (JIT, pools, plans), not recorded.
    await runPhase('warm-up', 4, options.quick ? 100 : 200);
    phases.push(await runPhase('1 writer', 1, options.quick ? 300 : 1000));
    phases.push(await runPhase('16 writers', 16, options.quick ? 2000 : 6000));
    return { postgres: { version, settings }, phases };
  } finally {
    for (const stream of streams) stream.close();
    await stats?.end().catch(() => undefined);
    for (const server of servers) await server.stop().catch(() => undefined);
  }
}

function readLoad(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

