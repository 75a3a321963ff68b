/**
 * The deployment recipe of docs/deploy.md, run the way each piece runs it. CI has no Docker daemon
 * and no systemd, so the image and the unit are not started by those: this test parses
 * deploy/Dockerfile and deploy/tether-server@.service and runs exactly their commands (ENTRYPOINT +
 * CMD, HEALTHCHECK, ExecStart, ExecReload), with their environment, as their non-root user, against
 * the server bundle (built like dist/server.js) with PostgreSQL. deploy/nginx.conf runs in a real
 * nginx (Debian's nginx-light) in front of two instances on one PostgreSQL database.
 */
import * as assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { newSlotId, newToken } from './harness';
import { type PostgresCluster, startPostgres } from '../../support/postgres';
import { freePort } from '../../support/ports';
import { serverBundle, SyncServerProcess } from '../../support/syncServer';

const REPO = resolve(__dirname, '../../..');

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerInstructions(text: string): Array<{ op: string; args: string }> {
  const joined = text.replace(/\\\r?\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^(\S+)\s*(.*)$/.exec(line)!;
      return { op: match[1].toUpperCase(), args: match[2].trim() };
    });
}

/** `K=V K2="v 2"` (ENV) into pairs. */
function envPairs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const match of text.matchAll(/(\w+)=("([^"]*)"|\S*)/g)) out[match[1]] = match[3] ?? match[2];
  return out;
}

/** systemd unit `[Service]` keys (repeated keys kept in order), with %i expanded. */
function unitService(text: string, instance: string): Array<[string, string]> {
  const lines = text.split('\n');
  const out: Array<[string, string]> = [];
  let inService = false;
  for (const raw of lines) {
    const line = raw.trim();
    if (line.startsWith('[')) inService = line === '[Service]';
    else if (inService && line !== '' && !line.startsWith('#')) {
      const eq = line.indexOf('=');
      out.push([line.slice(0, eq), line.slice(eq + 1).replaceAll('%i', instance)]);
    }
  }
  return out;
}

/** Runs a recipe's command line the way it runs there (its environment only, its user, cwd /) until it listens. */
function run(command: string[], env: Record<string, string>, uid: number, gid: number): Promise<SyncServerProcess> {
  return SyncServerProcess.launch({ command, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, uid, gid, cwd: '/' });
}

async function stop(server: SyncServerProcess, signal: NodeJS.Signals): Promise<number | null> {
  return (await server.stop(signal, 60_000)).code;
}

async function waitForLine(running: SyncServerProcess, msg: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    for (const line of running.lines) {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.msg === msg) return parsed;
      } catch {
        /* not JSON */
      }
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`no ${msg} line: ${running.lines.join('\n')}`);
}

/** Opens an SSE stream over a raw socket from `localAddress`; resolves with status and a reader of everything that follows. */
function rawStream(port: number, token: string, localAddress: string, forwardedFor?: string): Promise<{ status: number; socket: Socket; text: () => string }> {
  return new Promise((done, fail) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let text = '';
    let settled = false;
    socket.setEncoding('latin1');
    socket.on('error', fail);
    socket.on('connect', () =>
      socket.write(`GET /v1/events HTTP/1.1\r\nHost: sync.example.com\r\nAuthorization: Bearer ${token}\r\n${forwardedFor ? `X-Forwarded-For: ${forwardedFor}\r\n` : ''}\r\n`),
    );
    socket.on('data', (chunk: string) => {
      text += chunk;
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!settled && match && text.includes('\r\n\r\n')) {
        settled = true;
        done({ status: Number(match[1]), socket, text: () => text });
      }
    });
  });
}

describe('deployment recipe (docs/deploy.md)', function () {
  this.timeout(120_000);
  let cluster: PostgresCluster | undefined;
  let root: string;
  let bundle: string;

  before(async function () {
    cluster = await startPostgres(this);
    root = mkdtempSync(join(tmpdir(), 'tether-deploy-'));
    chmodSync(root, 0o755);
    bundle = await serverBundle();
  });
  after(() => {
    cluster?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('the Dockerfile: non-root user, /data volume, HEALTHCHECK on /healthz, PostgreSQL via --database-url (run without Docker)', async () => {
    const instructions = dockerInstructions(readFileSync(join(REPO, 'deploy/Dockerfile'), 'utf8'));
    const one = (op: string): string => {
      const found = instructions.filter((i) => i.op === op);
      assert.equal(found.length, 1, `one ${op}`);
      return found[0].args;
    };
    assert.match(one('FROM'), /^node:20/);
    const copy = one('COPY').split(/\s+/);
    assert.deepEqual(copy, ['dist/server.js', '/app/server.js']);
    assert.match(readFileSync(join(REPO, 'esbuild.mjs'), 'utf8'), /outfile: 'dist\/server\.js'/, 'npm run build makes what the image copies');
    const user = one('USER');
    const runStep = one('RUN');
    const uid = Number(/--uid (\d+)/.exec(runStep)?.[1]);
    const gid = Number(/--gid (\d+)/.exec(runStep)?.[1]);
    assert.ok(uid >= 1000 && gid >= 1000, 'a non-root user with a fixed uid');
    assert.equal(user, 'tether:tether');
    assert.deepEqual(JSON.parse(one('VOLUME')), ['/data']);
    const env = envPairs(one('ENV'));
    assert.equal(env.TETHER_DATA_DIR, '/data');
    assert.equal(env.TETHER_HOST, '0.0.0.0');
    assert.equal(one('STOPSIGNAL'), 'SIGTERM');
    const health = /^(?:--\S+\s+)*CMD\s+(\[.*\])$/.exec(one('HEALTHCHECK'));
    assert.ok(health, 'HEALTHCHECK ... CMD [exec form]');
    const healthCmd = JSON.parse(health[1]) as string[];
    assert.ok(healthCmd.join(' ').includes('/healthz'));
    const entrypoint = JSON.parse(one('ENTRYPOINT')) as string[];
    const cmd = JSON.parse(one('CMD')) as string[];

    // The image's file system: /app/server.js and a /data owned by the image's user.
    const image = join(root, 'image');
    mkdirSync(join(image, 'app'), { recursive: true });
    copyFileSync(bundle, join(image, 'app/server.js'));
    chmodSync(join(image, 'app/server.js'), 0o644);
    mkdirSync(join(image, 'data'), { mode: 0o700 });
    chownSync(join(image, 'data'), uid, gid);
    chmodSync(image, 0o755);
    chmodSync(join(image, 'app'), 0o755);
    const inImage = (arg: string): string => (arg.startsWith('/app/') ? join(image, arg) : arg === 'node' ? process.execPath : arg);
    const port = await freePort();
    const containerEnv = { ...env, TETHER_DATA_DIR: join(image, 'data'), TETHER_PORT: String(port), TETHER_HOST: '127.0.0.1' };
    const healthcheck = (): number | null => {
      const result = spawnSync(inImage(healthCmd[0]), healthCmd.slice(1), { env: { ...containerEnv }, uid, gid, cwd: '/', timeout: 15_000, encoding: 'utf8' });
      if (result.status === null) throw new Error(`health check did not finish: ${result.error?.message ?? result.signal} ${result.stderr}`);
      return result.status;
    };

    // 1. `docker run -v tether-data:/data image`: the file store in the volume.
    const fileStore = await run([...entrypoint, ...cmd].map(inImage), containerEnv, uid, gid);
    assert.equal(healthcheck(), 0);
    const token = newToken();
    const slot = newSlotId();
    const base = `http://127.0.0.1:${port}`;
    const put = await fetch(`${base}/v1/blobs/${slot}`, { method: 'PUT', headers: { Authorization: `Bearer ${token}`, 'If-None-Match': '*', 'Content-Type': 'application/json' }, body: JSON.stringify({ data: 'QUJD' }) });
    assert.equal(put.status, 201);
    assert.ok(existsSync(join(image, 'data/accounts')), 'the store lives in the volume');
    assert.equal(await stop(fileStore, 'SIGTERM'), 0);
    assert.notEqual(healthcheck(), 0, 'the health check fails once the server is gone');

    // 2. `docker run image --database-url postgres://…`: arguments after the image name replace CMD.
    const databaseUrl = await cluster!.createDatabase();
    const pg = await run([...entrypoint, '--database-url', databaseUrl].map(inImage), containerEnv, uid, gid);
    assert.equal(((await waitForLine(pg, 'store_open')) as { store?: string }).store, 'postgres');
    assert.equal(healthcheck(), 0);
    const put2 = await fetch(`${base}/v1/blobs/${slot}`, { method: 'PUT', headers: { Authorization: `Bearer ${token}`, 'If-None-Match': '*', 'Content-Type': 'application/json' }, body: JSON.stringify({ data: 'QUJD' }) });
    assert.equal(put2.status, 201);
    assert.equal(await stop(pg, 'SIGTERM'), 0);
  });

  it('the systemd unit: ExecStart as an unprivileged user with its environment, ExecReload, a clean stop (run without systemd)', async () => {
    const port = await freePort();
    const service = unitService(readFileSync(join(REPO, 'deploy/tether-server@.service'), 'utf8'), String(port));
    const values = (key: string): string[] => service.filter(([k]) => k === key).map(([, v]) => v);
    assert.deepEqual(values('DynamicUser'), ['yes'], 'no fixed account: systemd picks an unprivileged uid');
    assert.deepEqual(values('NoNewPrivileges'), ['yes']);
    const env: Record<string, string> = {};
    for (const line of values('Environment')) Object.assign(env, envPairs(line));
    assert.equal(env.TETHER_PORT, String(port));
    assert.equal(env.TETHER_HOST, '127.0.0.1');
    const [envFile] = values('EnvironmentFile');
    assert.equal(envFile, '-/etc/tether-server/env');
    // The operator's env file: PostgreSQL and the proxy in front.
    const databaseUrl = await cluster!.createDatabase();
    Object.assign(env, envPairs(`TETHER_DATABASE_URL=${databaseUrl}\nTETHER_TRUST_PROXY=127.0.0.1\n`));
    const uid = 61_234; // what DynamicUser= would allocate: an unprivileged uid with no home
    const state = join(root, `state-${port}`);
    mkdirSync(state, { mode: 0o700 });
    chownSync(state, uid, uid);
    env.TETHER_DATA_DIR = state;
    const opt = join(root, 'opt');
    mkdirSync(opt, { recursive: true, mode: 0o755 });
    copyFileSync(bundle, join(opt, 'server.js'));
    chmodSync(join(opt, 'server.js'), 0o644);
    const [execStart] = values('ExecStart');
    const command = execStart.split(/\s+/).map((arg) => (arg === '/usr/bin/node' ? process.execPath : arg === '/opt/tether-server/server.js' ? join(opt, 'server.js') : arg));
    const unit = await run(command, env, uid, uid);
    const url = unit.url;
    assert.equal(url, `http://127.0.0.1:${port}`);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const [execReload] = values('ExecReload');
    const reload = execReload.replace('$MAINPID', String(unit.child.pid)).split(/\s+/);
    execFileSync(reload[0], reload.slice(1));
    await waitForLine(unit, 'sighup_ignored'); // no TLS configured: a reload changes nothing, and nothing dies
    assert.equal(unit.child.exitCode, null);
    const [killSignal] = values('KillSignal');
    const started = Date.now();
    assert.equal(await stop(unit, killSignal as NodeJS.Signals), 0);
    assert.ok(Date.now() - started < Number(values('TimeoutStopSec')[0]) * 1000);
  });

  it('nginx (deploy/nginx.conf) in front of two instances on one PostgreSQL: streams unbuffered, limits count the real client', async function () {
    const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));
    if (!nginx) {
      if (process.env.CI) throw new Error('nginx is not installed (.ci/run installs nginx-light)');
      this.skip();
    }
    const databaseUrl = await cluster!.createDatabase();
    const ports = [await freePort(), await freePort()];
    const instances = await Promise.all(ports.map((port) => run([process.execPath, bundle, '--port', String(port), '--database-url', databaseUrl, '--trust-proxy', '127.0.0.1'], {}, 0, 0)));
    const proxyPort = await freePort();
    const prefix = join(root, 'nginx');
    mkdirSync(prefix, { recursive: true });
    // The recipe as shipped, with the test's ports and without the certificate (TLS is nginx's own business).
    const site = readFileSync(join(REPO, 'deploy/nginx.conf'), 'utf8')
      .replace('127.0.0.1:8801', `127.0.0.1:${ports[0]}`)
      .replace('127.0.0.1:8802', `127.0.0.1:${ports[1]}`)
      .replace('listen 443 ssl;', `listen 127.0.0.1:${proxyPort};`)
      .replace(/^\s*ssl_certificate.*$/gm, '');
    assert.match(site, /location = \/v1\/events \{[^}]*proxy_buffering off;/);
    writeFileSync(join(prefix, 'site.conf'), site);
    writeFileSync(
      join(prefix, 'nginx.conf'),
      `daemon off;\nuser root;\npid ${prefix}/nginx.pid;\nerror_log ${prefix}/error.log warn;\nevents { worker_connections 1024; }\n` +
        `http {\n  access_log off;\n  client_body_temp_path ${prefix}/body;\n  proxy_temp_path ${prefix}/proxy;\n  include ${prefix}/site.conf;\n}\n`,
    );
    const proxy = spawn(nginx!, ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { stdio: 'ignore' });
    const sockets: Socket[] = [];
    try {
      const base = `http://127.0.0.1:${proxyPort}`;
      for (let i = 0; i < 50 && !(await fetch(`${base}/healthz`).then((r) => r.ok, () => false)); i++) await new Promise((done) => setTimeout(done, 100));
      assert.equal((await fetch(`${base}/healthz`)).status, 200);

      // A stream through the proxy sees every write, whichever instance took the write.
      const token = newToken();
      const stream = await rawStream(proxyPort, token, '127.0.0.2');
      assert.equal(stream.status, 200);
      sockets.push(stream.socket);
      const slot = newSlotId();
      let version: number | undefined;
      for (let i = 0; i < 10; i++) {
        const response = await fetch(`${base}/v1/blobs/${slot}`, {
          method: 'PUT',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...(version === undefined ? { 'If-None-Match': '*' } : { 'If-Match': `"${version}"` }) },
          body: JSON.stringify({ data: Buffer.from(`write-${i}`).toString('base64') }),
        });
        assert.ok(response.ok, `PUT ${i} answered ${response.status}`);
        version = ((await response.json()) as { version: number }).version;
        const expected = `"version":${version}`;
        for (let wait = 0; wait < 100 && !stream.text().includes(expected); wait++) await new Promise((done) => setTimeout(done, 50));
        assert.ok(stream.text().includes(expected), `write ${i} reached the proxied stream while it stays open`);
      }
      // least_conn sends the writes to the instance that does not hold the stream: the fan-out between
      // the two instances (PostgreSQL NOTIFY) is what delivered them.
      const holder = instances.findIndex((instance) => instance.lines.some((line) => line.includes('"msg":"stream_open"')));
      const writesElsewhere = instances[1 - holder].lines.filter((line) => line.includes('"route":"putBlob"')).length;
      assert.ok(holder >= 0 && writesElsewhere > 0, `the stream's instance ${holder}; writes on the other: ${writesElsewhere}`);

      // Limits count the client nginx names, and a client's own X-Forwarded-For buys nothing.
      let opened = 0;
      for (let i = 0; i < 80; i++) {
        const extra = await rawStream(proxyPort, token, '127.0.0.3', `198.51.100.${i}`);
        if (extra.status === 200) opened++;
        sockets.push(extra.socket);
      }
      assert.ok(opened >= 32 && opened <= 64, `streams from one client through the proxy: ${opened} (32 per instance)`);
      const ips = new Set(instances.flatMap((instance) => instance.lines.filter((line) => line.includes('"msg":"stream_open"')).map((line) => (JSON.parse(line) as { ip: string }).ip)));
      assert.deepEqual([...ips].sort(), ['127.0.0.2', '127.0.0.3']);
    } finally {
      for (const socket of sockets) socket.destroy();
      proxy.kill('SIGQUIT');
      await Promise.all(instances.map((instance) => stop(instance, 'SIGKILL')));
    }
  });
});
