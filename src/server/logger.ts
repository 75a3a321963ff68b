/**
 * Structured logs: one JSON object per line on stderr. Fields are typed as primitives so that nobody
 * passes a request or a body by accident; callers log account hash prefixes, never tokens or blobs.
 */
export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Record<string, LogValue>;
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  log(level: LogLevel, msg: string, fields?: LogFields): void;
}

export function createJsonLogger(write: (line: string) => void = (line) => process.stderr.write(line), least: LogLevel = 'info'): Logger {
  const threshold = LOG_LEVELS.indexOf(least);
  return {
    log(level, msg, fields = {}) {
      if (LOG_LEVELS.indexOf(level) < threshold) return;
      const record: Record<string, LogValue> = { time: new Date().toISOString(), level, msg };
      for (const [key, value] of Object.entries(fields)) {
        if (value !== undefined && !(key in record)) record[key] = value;
      }
      write(JSON.stringify(record) + '\n');
    },
  };
}

export const silentLogger: Logger = { log() {} };
