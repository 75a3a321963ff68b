/**
 * A throwaway PostgreSQL cluster for tests: initdb + pg_ctl in a temp dir, run as the `postgres`
 * user when we are root, on a free high port, removed afterwards. Without the binaries the tests
 * skip with a message, except under CI, where that is a failure.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort } from './ports';

export interface PostgresCluster {
  port: number;
  url(database: string): string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(): Promise<string>;
  /** `pg_dump` of one table, as the text a backup of the server would hold. */
  dumpTable(database: string, table: string): Buffer;
  stop(): void;
}

const PG_ROOT = '/usr/lib/postgresql';

function findBinDir(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT)
    .filter((name) => existsSync(join(PG_ROOT, name, 'bin', 'initdb')) && existsSync(join(PG_ROOT, name, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(PG_ROOT, versions[0], 'bin') : undefined;
}

/** Runs a PostgreSQL binary as `postgres` (it refuses to run as root). */
function asPostgres(binary: string, args: string[]): Buffer {
  const asRoot = process.getuid?.() === 0;
  const [command, fullArgs] = asRoot ? ['runuser', ['-u', 'postgres', '--', binary, ...args]] : [binary, args];
  return execFileSync(command, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}

/**
 * Starts a cluster, or skips the calling suite (outside CI) when PostgreSQL is not installed.
 * Call from a before() hook with its `this`.
 */
export async function startPostgres(context: Mocha.Context): Promise<PostgresCluster> {
  if (!findBinDir()) {
    const message = `PostgreSQL binaries not found under ${PG_ROOT}/*/bin (install the Debian package "postgresql")`;
    if (process.env.CI) throw new Error(`${message}; CI requires them`);
    console.warn(`    skipping PostgreSQL tests: ${message}`);
    context.skip();
  }
  return startPostgresCluster();
}

/** Starts a cluster outside mocha (the benchmarks); throws when PostgreSQL is not installed. */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const bin = findBinDir();
  if (!bin) throw new Error(`PostgreSQL binaries not found under ${PG_ROOT}/*/bin (install the Debian package "postgresql")`);
  const root = mkdtempSync(join(tmpdir(), 'tether-pg-'));
  const dataDir = join(root, 'data');
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(root, uid, gid);
  }
  const port = await freePort();
  try {
    asPostgres(join(bin, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
    asPostgres(join(bin, 'pg_ctl'), [
      '-D', dataDir, '-l', join(root, 'server.log'), '-w', '-t', '60',
      '-o', `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c max_connections=200`,
      'start',
    ]);
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`could not start a throwaway PostgreSQL cluster: ${(error as Error).message}\n${stderr}`);
  }

  let counter = 0;
  const url = (database: string): string => `postgres://postgres@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    async createDatabase() {
      const name = `tether_test_${process.pid}_${++counter}`;
      const client = new Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    dumpTable(database, table) {
      return asPostgres(join(bin ?? '', 'pg_dump'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', database, '-t', table, '--data-only']);
    },
    stop() {
      try {
        asPostgres(join(bin ?? '', 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}
