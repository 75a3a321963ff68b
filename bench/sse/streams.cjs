/*
 * Holds many SSE streams to the sync server with raw sockets (an EventSource per stream would
 * measure the client library, not the server). Driven over stdin/stdout, one JSON object a line:
 *   argv: <port> <token> <count> <concurrency>
 *   out:  {"type":"open","open":n,"failed":n}                      once every stream has its 200
 *   in:   {"cmd":"expect","nonce":"…","timeoutMs":n}
 *   out:  {"type":"got","nonce":"…","times":[ms…],"missing":n}      arrival times (shared clock)
 *   in:   {"cmd":"close"}  -> closes every stream and exits
 */
'use strict';
const net = require('node:net');
const readline = require('node:readline');

const [port, token, countText, concurrencyText] = process.argv.slice(2);
const count = Number(countText);
const concurrency = Number(concurrencyText || 200);
const now = () => performance.timeOrigin + performance.now();
const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

const streams = [];
let expectation;

function openOne() {
  return new Promise((resolve) => {
    const socket = net.connect({ port: Number(port), host: '127.0.0.1', noDelay: true });
    const stream = { socket, ok: false, tail: '', seen: new Map() };
    let settled = false;
    const done = (ok) => {
      if (settled) return;
      settled = true;
      stream.ok = ok;
      resolve(stream);
    };
    socket.setEncoding('latin1');
    socket.on('connect', () => {
      socket.write(`GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    socket.on('data', (chunk) => {
      if (!stream.ok) {
        if (/^HTTP\/1\.1 200/.test(chunk)) done(true);
        else if (/^HTTP\/1\.1 \d+/.test(chunk)) {
          done(false);
          socket.destroy();
          return;
        }
      }
      if (expectation && !stream.seen.has(expectation.nonce)) {
        const window = stream.tail + chunk;
        if (window.includes(expectation.nonce)) {
          stream.seen.set(expectation.nonce, now());
          expectation.remaining -= 1;
          if (expectation.remaining === 0) finish();
        }
      }
      stream.tail = chunk.slice(-64);
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

function finish() {
  if (!expectation) return;
  const current = expectation;
  expectation = undefined;
  clearTimeout(current.timer);
  const times = [];
  for (const stream of streams) {
    const at = stream.seen.get(current.nonce);
    if (at !== undefined) times.push(at);
  }
  send({ type: 'got', nonce: current.nonce, times, missing: current.total - times.length });
}

async function main() {
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      const stream = await openOne();
      if (stream.ok) streams.push(stream);
      else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  send({ type: 'open', open: streams.length, failed });
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const command = JSON.parse(line);
    if (command.cmd === 'expect') {
      const live = streams.filter((s) => !s.socket.destroyed).length;
      expectation = { nonce: command.nonce, remaining: live, total: live, timer: setTimeout(finish, command.timeoutMs) };
      if (live === 0) finish();
    } else if (command.cmd === 'close') {
      for (const stream of streams) stream.socket.destroy();
      setTimeout(() => process.exit(0), 50);
    }
  });
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack}\n`);
  process.exit(1);
});
