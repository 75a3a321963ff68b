/*
 * Preloaded into the sync server (node --require) by the benchmarks; nothing in src/ changes.
 * Stamps, on a clock shared with the bench processes (performance.timeOrigin + performance.now()):
 *  - when a PUT /v1/blobs/<slot> request arrives (the 'request' event: headers parsed), and
 *  - the first and the last SSE write of the `blob` event for that slot (the fan-out loop),
 * then writes them as JSON to $TETHER_BENCH_PROBE_OUT when the server exits.
 */
'use strict';
const http = require('node:http');
const fs = require('node:fs');

const out = process.env.TETHER_BENCH_PROBE_OUT;
const now = () => performance.timeOrigin + performance.now();
const received = new Map(); // "slotId:version" -> when the PUT that made that version arrived
const records = [];
let open; // the fan-out being written in this tick

const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, ...rest) {
  if (event === 'request' && req.method === 'PUT') {
    const match = /^\/v1\/blobs\/([a-z2-7]{26})/.exec(req.url || '');
    const res = rest[0];
    if (match && res) {
      res.__benchSlot = match[1];
      res.__benchReceivedAt = now();
    }
  }
  return emit.call(this, event, req, ...rest);
};

// The PUT's answer carries the version it created: remember when that PUT arrived.
const end = http.ServerResponse.prototype.end;
http.ServerResponse.prototype.end = function (chunk, ...rest) {
  if (this.__benchSlot && typeof chunk === 'string') {
    const match = /"version":(\d+)/.exec(chunk);
    if (match) received.set(`${this.__benchSlot}:${match[1]}`, this.__benchReceivedAt);
  }
  return end.call(this, chunk, ...rest);
};

const write = http.ServerResponse.prototype.write;
http.ServerResponse.prototype.write = function (chunk, ...rest) {
  if (typeof chunk === 'string' && chunk.startsWith('id: ') && chunk.includes('\nevent: blob\n')) {
    const t = now();
    if (open && open.frame === chunk) {
      open.last = t;
      open.streams += 1;
    } else {
      const slot = /"slotId":"([a-z2-7]{26})"/.exec(chunk);
      const version = /"version":(\d+)/.exec(chunk);
      open = { frame: chunk, slotId: slot ? slot[1] : undefined, version: version ? version[1] : undefined, first: t, last: t, streams: 1 };
      const current = open;
      setImmediate(() => {
        records.push({ slotId: current.slotId, version: current.version, firstWrite: current.first, lastWrite: current.last, streams: current.streams });
        if (open === current) open = undefined;
      });
    }
  }
  return write.call(this, chunk, ...rest);
};

process.on('exit', () => {
  for (const record of records) record.receivedAt = received.get(`${record.slotId}:${record.version}`);
  if (out) fs.writeFileSync(out, JSON.stringify({ records, memory: process.memoryUsage() }));
});
process.on('SIGUSR2', () => {
  if (out) fs.writeFileSync(`${out}.mem`, JSON.stringify({ memory: process.memoryUsage(), at: now() }));
});
