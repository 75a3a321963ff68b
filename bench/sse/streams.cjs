/*
 * Holds many SSE streams to the sync server with raw sockets (an EventSource per stream would
 * measure the client library, not the server). Driven over stdin/stdout, one JSON object a line:
 *   argv: <port> <token> <count> <concurrency> [<perAddress> <firstIndex>]
 *         with perAddress > 0, stream i (counting from firstIndex over all holders) connects from
 *         loopback address number floor(i / perAddress) (127.0.1.1, 127.0.1.2, …, see sourceAddress),
 *         so that the server's per-address stream cap can stay on
 *   out:  {"type":"open","open":n,"failed":n}                      once every stream has its 200
 *   in:   {"cmd":"expect","nonce":"…","timeoutMs":n}
 *   out:  {"type":"got","nonce":"…","times":[ms…],"missing":n}      arrival times (shared clock)
 *   in:   {"cmd":"close"}  -> closes every stream and exits
 */
'use strict';
const net = require('node:net');
const readline = require('node:readline');

const [port, token, countText, concurrencyText, perAddressText, firstIndexText] = process.argv.slice(2);
const count = Number(countText);
const concurrency = Number(concurrencyText || 200);
const perAddress = Number(perAddressText || 0);
const firstIndex = Number(firstIndexText || 0);

/** Linux answers on all of 127.0.0.0/8: address k is 127.0.<1 + k / 250>.<1 + k % 250>. */
function sourceAddress(index) {
  if (!(perAddress > 0)) return undefined;
  const k = Math.floor((firstIndex + index) / perAddress);
  return `127.0.${1 + Math.floor(k / 250)}.${1 + (k % 250)}`;
}
const now = () => performance.timeOrigin + performance.now();
const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

const streams = [];
let expectation;

function openOne(index) {
  return new Promise((resolve) => {
    const socket = net.connect({ port: Number(port), host: '127.0.0.1', noDelay: true, localAddress: sourceAddress(index) });
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
      const index = next;
      next += 1;
      const stream = await openOne(index);
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
