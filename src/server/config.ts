import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

export interface ServerConfig {
  port: number;
  host: string;
  storage: { kind: 'file'; dataDir: string } | { kind: 'postgres'; databaseUrl: string };
  maxBlobBytes: number;
  maxSlots: number;
  /** Per token hash. */
  rate: { perSecond: number; burst: number };
  /** Per client IP, checked before authentication so token guessing is throttled too. */
  ipRate: { perSecond: number; burst: number };
  heartbeatMs: number;
  maxStreamsPerAccount: number;
  eventLogSize: number;
}

export type ParsedArgs = { kind: 'help'; text: string } | { kind: 'run'; config: ServerConfig };

export class ConfigError extends Error {
  constructor(
    readonly reason: 'unknown_option' | 'invalid_value',
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
  static is(error: unknown): error is ConfigError {
    return error instanceof ConfigError;
  }
}

interface NumericOption {
  flag: string;
  env: string;
  fallback: number;
  min: number;
  max: number;
  integer: boolean;
}

const NUMERIC = {
  port: { flag: 'port', env: 'TETHER_PORT', fallback: 8787, min: 0, max: 65535, integer: true },
  maxBlobBytes: { flag: 'max-blob-bytes', env: 'TETHER_MAX_BLOB_BYTES', fallback: 256 * 1024, min: 64, max: 64 * 1024 * 1024, integer: true },
  maxSlots: { flag: 'max-slots', env: 'TETHER_MAX_SLOTS', fallback: 64, min: 1, max: 100_000, integer: true },
  rate: { flag: 'rate', env: 'TETHER_RATE', fallback: 10, min: 0.001, max: 1e6, integer: false },
  burst: { flag: 'burst', env: 'TETHER_BURST', fallback: 60, min: 1, max: 1e6, integer: true },
  ipRate: { flag: 'ip-rate', env: 'TETHER_IP_RATE', fallback: 50, min: 0.001, max: 1e6, integer: false },
  ipBurst: { flag: 'ip-burst', env: 'TETHER_IP_BURST', fallback: 300, min: 1, max: 1e6, integer: true },
  heartbeatMs: { flag: 'heartbeat-ms', env: 'TETHER_HEARTBEAT_MS', fallback: 15_000, min: 50, max: 3_600_000, integer: true },
  maxStreams: { flag: 'max-streams', env: 'TETHER_MAX_STREAMS', fallback: 64, min: 1, max: 100_000, integer: true },
  eventLogSize: { flag: 'event-log-size', env: 'TETHER_EVENT_LOG_SIZE', fallback: 256, min: 1, max: 1_000_000, integer: true },
} satisfies Record<string, NumericOption>;

export const HELP_TEXT = `Usage: node dist/server.js [options]

Tether sync server: stores end-to-end encrypted blobs per account and streams changes over SSE.

Options (each also read from the environment variable shown; the flag wins):
  --port <n>             TETHER_PORT            listen port, 0 picks a free one (default 8787)
  --host <addr>          TETHER_HOST            listen address (default 127.0.0.1)
  --data-dir <dir>       TETHER_DATA_DIR        file store directory (default ~/.local/share/tether-server)
  --database-url <url>   TETHER_DATABASE_URL    PostgreSQL URL; used instead of the file store
  --max-blob-bytes <n>   TETHER_MAX_BLOB_BYTES  largest blob after base64 decoding (default 262144)
  --max-slots <n>        TETHER_MAX_SLOTS       slots per account (default 64)
  --rate <n>             TETHER_RATE            requests per second per account token (default 10)
  --burst <n>            TETHER_BURST           burst per account token (default 60)
  --ip-rate <n>          TETHER_IP_RATE         requests per second per client IP (default 50)
  --ip-burst <n>         TETHER_IP_BURST        burst per client IP (default 300)
  --heartbeat-ms <n>     TETHER_HEARTBEAT_MS    SSE heartbeat interval (default 15000)
  --max-streams <n>      TETHER_MAX_STREAMS     open event streams per account (default 64)
  --event-log-size <n>   TETHER_EVENT_LOG_SIZE  events kept per account for Last-Event-ID (default 256)
  --help                                        show this text
`;

export function parseServerArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    host: { type: 'string' },
    'data-dir': { type: 'string' },
    'database-url': { type: 'string' },
    help: { type: 'boolean' },
  };
  for (const option of Object.values(NUMERIC)) options[option.flag] = { type: 'string' };

  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as typeof values;
  } catch (error) {
    throw new ConfigError('unknown_option', `${(error as Error).message}\n\n${HELP_TEXT}`);
  }
  if (values.help === true) return { kind: 'help', text: HELP_TEXT };

  const text = (flag: string, envName: string): string | undefined => {
    const fromFlag = values[flag];
    if (typeof fromFlag === 'string') return fromFlag;
    const fromEnv = env[envName];
    return fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
  };
  const numeric = (option: NumericOption): number => {
    const raw = text(option.flag, option.env);
    if (raw === undefined) return option.fallback;
    const value = Number(raw);
    const pattern = option.integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
    if (!pattern.test(raw.trim()) || !Number.isFinite(value) || value < option.min || value > option.max) {
      throw new ConfigError(
        'invalid_value',
        `--${option.flag} (${option.env}) must be ${option.integer ? 'an integer' : 'a number'} from ${option.min} to ${option.max}, got ${JSON.stringify(raw)}`,
      );
    }
    return value;
  };

  const databaseUrl = text('database-url', 'TETHER_DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('invalid_value', '--database-url (TETHER_DATABASE_URL) must start with postgres:// or postgresql://');
  }
  const dataDir = text('data-dir', 'TETHER_DATA_DIR') ?? join(homedir(), '.local', 'share', 'tether-server');

  return {
    kind: 'run',
    config: {
      port: numeric(NUMERIC.port),
      host: text('host', 'TETHER_HOST') ?? '127.0.0.1',
      storage: databaseUrl !== undefined ? { kind: 'postgres', databaseUrl } : { kind: 'file', dataDir: resolve(dataDir) },
      maxBlobBytes: numeric(NUMERIC.maxBlobBytes),
      maxSlots: numeric(NUMERIC.maxSlots),
      rate: { perSecond: numeric(NUMERIC.rate), burst: numeric(NUMERIC.burst) },
      ipRate: { perSecond: numeric(NUMERIC.ipRate), burst: numeric(NUMERIC.ipBurst) },
      heartbeatMs: numeric(NUMERIC.heartbeatMs),
      maxStreamsPerAccount: numeric(NUMERIC.maxStreams),
      eventLogSize: numeric(NUMERIC.eventLogSize),
    },
  };
}
