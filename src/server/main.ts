import type { BlobStore } from './blobStore';
import { ConfigError, parseServerArgs, type ServerConfig } from './config';
import { FileBlobStore } from './fileBlobStore';
import { createJsonLogger } from './logger';
import { PostgresBlobStore } from './postgresBlobStore';
import { TetherServer } from './server';

/** Entry point of dist/server.js: parse the CLI, open the store, serve until SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    const parsed = parseServerArgs(process.argv.slice(2), process.env);
    if (parsed.kind === 'help') {
      process.stdout.write(parsed.text);
      return;
    }
    config = parsed.config;
  } catch (error) {
    if (ConfigError.is(error)) {
      process.stderr.write(`${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }

  const logger = createJsonLogger(undefined, config.logLevel);
  const store: BlobStore =
    config.storage.kind === 'postgres'
      ? new PostgresBlobStore(config.storage.databaseUrl, { onLog: (level, msg, fields) => logger.log(level, msg, fields) })
      : new FileBlobStore(config.storage.dataDir);
  const { corrupt } = await store.open();
  for (const path of corrupt) logger.log('error', 'corrupt_blob', { path, action: 'set aside unread; its slots read as absent' });
  logger.log('info', 'store_open', {
    store: store.kind,
    dataDir: config.storage.kind === 'file' ? config.storage.dataDir : undefined,
    corrupt: corrupt.length,
  });

  const server = new TetherServer(config, store, logger);

  // Handlers go in before "listening" is printed, so a supervisor that signals right away is honoured.
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.log('warn', 'forced_exit', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.log('info', 'shutting_down', { signal });
    void (async () => {
      try {
        await server.shutdown();
        await store.close();
        logger.log('info', 'stopped', {});
        process.exit(0);
      } catch (error) {
        logger.log('error', 'shutdown_failed', { error: (error as Error).message });
        process.exit(1);
      }
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // SIGHUP re-reads the TLS certificate and key (after a renewal); a bad pair keeps the old one.
  process.on('SIGHUP', () => {
    if (!config.tls) return logger.log('info', 'sighup_ignored', { reason: 'no --tls-cert' });
    const result = server.reloadTls();
    if (result.reloaded) logger.log('info', 'tls_reloaded', { cert: config.tls.certFile });
    else logger.log('error', 'tls_reload_failed', { cert: config.tls.certFile, error: result.error, action: 'kept the previous certificate' });
  });

  const url = await server.listen();
  logger.log('info', 'listening', { url });
}

main().catch((error: unknown) => {
  process.stderr.write(
    JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'fatal', error: error instanceof Error ? error.message : String(error) }) + '\n',
  );
  process.exit(1);
});
