import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAddressRange } from './clientAddress';
import { LOG_LEVELS, type LogLevel } from './logger';

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
  /** Total decoded blob bytes per account; keeps a full account's list well under what clients accept. */
  maxAccountBytes: number;
  /** Open sockets on the whole server (node's `server.maxConnections`). */
  maxConnections: number;
  /** Open sockets per peer address (not applied to trusted proxies, which carry many clients). */
  maxConnectionsPerIp: number;
  /** Open event streams per client address (after X-Forwarded-For from a trusted proxy). */
  maxStreamsPerIp: number;
  /** Accounts without any slot that one client address may start using per hour. */
  maxNewAccountsPerIpPerHour: number;
  /** Peer addresses (or CIDR ranges) whose X-Forwarded-For is believed. Empty: never. */
  trustProxy: string[];
  /** Milliseconds. */
  timeouts: { headersMs: number; requestMs: number; idleMs: number };
  tls?: { certFile: string; keyFile: string };
  /** The least severe log line written (debug adds one line per presence renewal). */
  logLevel: LogLevel;
}

/** The largest list answer (bytes) a Tether client accepts: src/sync/syncHttp.ts maxResponseBytes. */
export const CLIENT_LIST_CAP_BYTES = 8 * 1024 * 1024;
/** JSON around each slot in a list answer: slotId, version, updatedAt, quotes and commas. */
const LIST_ENTRY_OVERHEAD_BYTES = 160;

/** The size of the largest `GET /v1/blobs` answer an account within these limits can produce. */
export function largestListBytes(maxAccountBytes: number, maxSlots: number): number {
  return Math.ceil(maxAccountBytes / 3) * 4 + maxSlots * (LIST_ENTRY_OVERHEAD_BYTES + 4) + 64;
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
  maxAccountBytes: { flag: 'max-account-bytes', env: 'TETHER_MAX_ACCOUNT_BYTES', fallback: 4 * 1024 * 1024, min: 64, max: 64 * 1024 * 1024, integer: true },
  maxConnections: { flag: 'max-connections', env: 'TETHER_MAX_CONNECTIONS', fallback: 16_384, min: 1, max: 1_000_000, integer: true },
  maxConnectionsPerIp: { flag: 'max-connections-per-ip', env: 'TETHER_MAX_CONNECTIONS_PER_IP', fallback: 64, min: 1, max: 1_000_000, integer: true },
  maxStreamsPerIp: { flag: 'max-streams-per-ip', env: 'TETHER_MAX_STREAMS_PER_IP', fallback: 32, min: 1, max: 1_000_000, integer: true },
  maxNewAccountsPerIp: { flag: 'max-new-accounts-per-ip', env: 'TETHER_MAX_NEW_ACCOUNTS_PER_IP', fallback: 10, min: 1, max: 1_000_000, integer: true },
  headersTimeout: { flag: 'headers-timeout', env: 'TETHER_HEADERS_TIMEOUT', fallback: 10, min: 0.1, max: 3600, integer: false },
  requestTimeout: { flag: 'request-timeout', env: 'TETHER_REQUEST_TIMEOUT', fallback: 30, min: 0.1, max: 3600, integer: false },
  idleTimeout: { flag: 'idle-timeout', env: 'TETHER_IDLE_TIMEOUT', fallback: 30, min: 0.1, max: 3600, integer: false },
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
  --max-account-bytes <n> TETHER_MAX_ACCOUNT_BYTES
                         total blob bytes per account (default 4194304); a full account's list
                         must stay under the 8 MiB a client accepts, so larger values are refused
  --max-connections <n>  TETHER_MAX_CONNECTIONS open connections on the whole server (default 16384)
  --max-connections-per-ip <n>  TETHER_MAX_CONNECTIONS_PER_IP
                         open connections per peer address; trusted proxies exempt (default 64)
  --max-streams-per-ip <n>  TETHER_MAX_STREAMS_PER_IP
                         open event streams per client address (default 32)
  --max-new-accounts-per-ip <n>  TETHER_MAX_NEW_ACCOUNTS_PER_IP
                         accounts without slots one client address may start using per hour (default 10)
  --trust-proxy <list>   TETHER_TRUST_PROXY     comma-separated proxy addresses or CIDR ranges whose
                         X-Forwarded-For names the client (default: none, the peer address counts)
  --headers-timeout <s>  TETHER_HEADERS_TIMEOUT seconds to receive a request's headers (default 10)
  --request-timeout <s>  TETHER_REQUEST_TIMEOUT seconds to receive a whole request, body included (default 30)
  --idle-timeout <s>     TETHER_IDLE_TIMEOUT    seconds a connection may stay silent; event streams are
                         exempt, their heartbeats keep them alive (default 30)
  --tls-cert <file>      TETHER_TLS_CERT        PEM certificate chain: serve HTTPS (needs --tls-key);
                         both files are read again on SIGHUP
  --tls-key <file>       TETHER_TLS_KEY         PEM private key for --tls-cert
  --log-level <level>    TETHER_LOG_LEVEL       debug, info, warn or error (default info); debug adds
                         a line per presence renewal (every 10 s per device)
  --help                                        show this text
`;

export function parseServerArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    host: { type: 'string' },
    'data-dir': { type: 'string' },
    'database-url': { type: 'string' },
    'trust-proxy': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'log-level': { type: 'string' },
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

  const trustProxy = (text('trust-proxy', 'TETHER_TRUST_PROXY') ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  for (const entry of trustProxy) {
    if (parseAddressRange(entry) === undefined) {
      throw new ConfigError('invalid_value', `--trust-proxy (TETHER_TRUST_PROXY): ${JSON.stringify(entry)} is not an IP address or CIDR range`);
    }
  }
  const logLevel = text('log-level', 'TETHER_LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('invalid_value', `--log-level (TETHER_LOG_LEVEL) must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  }
  const certFile = text('tls-cert', 'TETHER_TLS_CERT');
  const keyFile = text('tls-key', 'TETHER_TLS_KEY');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('invalid_value', '--tls-cert (TETHER_TLS_CERT) and --tls-key (TETHER_TLS_KEY) go together');
  }

  const maxBlobBytes = numeric(NUMERIC.maxBlobBytes);
  const maxSlots = numeric(NUMERIC.maxSlots);
  const maxAccountBytes = numeric(NUMERIC.maxAccountBytes);
  if (maxAccountBytes < maxBlobBytes) {
    throw new ConfigError('invalid_value', `--max-account-bytes (${maxAccountBytes}) must be at least --max-blob-bytes (${maxBlobBytes})`);
  }
  if (largestListBytes(maxAccountBytes, maxSlots) > CLIENT_LIST_CAP_BYTES) {
    throw new ConfigError(
      'invalid_value',
      `--max-account-bytes ${maxAccountBytes} with --max-slots ${maxSlots} would let an account's list reach ${largestListBytes(maxAccountBytes, maxSlots)} bytes; clients accept at most ${CLIENT_LIST_CAP_BYTES}`,
    );
  }
  const seconds = (option: NumericOption): number => Math.round(numeric(option) * 1000);

  return {
    kind: 'run',
    config: {
      port: numeric(NUMERIC.port),
      host: text('host', 'TETHER_HOST') ?? '127.0.0.1',
      storage: databaseUrl !== undefined ? { kind: 'postgres', databaseUrl } : { kind: 'file', dataDir: resolve(dataDir) },
      maxBlobBytes,
      maxSlots,
      rate: { perSecond: numeric(NUMERIC.rate), burst: numeric(NUMERIC.burst) },
      ipRate: { perSecond: numeric(NUMERIC.ipRate), burst: numeric(NUMERIC.ipBurst) },
      heartbeatMs: numeric(NUMERIC.heartbeatMs),
      maxStreamsPerAccount: numeric(NUMERIC.maxStreams),
      eventLogSize: numeric(NUMERIC.eventLogSize),
      maxAccountBytes,
      maxConnections: numeric(NUMERIC.maxConnections),
      maxConnectionsPerIp: numeric(NUMERIC.maxConnectionsPerIp),
      maxStreamsPerIp: numeric(NUMERIC.maxStreamsPerIp),
      maxNewAccountsPerIpPerHour: numeric(NUMERIC.maxNewAccountsPerIp),
      trustProxy,
      logLevel: logLevel as LogLevel,
      timeouts: { headersMs: seconds(NUMERIC.headersTimeout), requestMs: seconds(NUMERIC.requestTimeout), idleMs: seconds(NUMERIC.idleTimeout) },
      ...(certFile !== undefined && keyFile !== undefined ? { tls: { certFile: resolve(certFile), keyFile: resolve(keyFile) } } : {}),
    },
  };
}
