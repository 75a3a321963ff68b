/*
 * One cold activation in a fresh Node process: `require` of the bundled dist/extension.js (with
 * `vscode` resolved to bench/activation/vscodeStub.cjs, an inert STUB) and activate(context).
 *   argv: <bundle> <storage dir>    out: {"requireMs":…, "activateMs":…, "settledMs":…}
 */
'use strict';
const Module = require('node:module');
const path = require('node:path');

const stubPath = path.join(__dirname, 'vscodeStub.cjs');
const resolve = Module._resolveFilename;
const ssh2StubPath = path.join(__dirname, 'ssh2Stub.cjs');
Module._resolveFilename = function (request, ...rest) {
  if (request === 'vscode') return stubPath;
  // Diagnostic only: a bundle built with ssh2 external, to see what loading ssh2 costs.
  if (request === 'ssh2' && process.env.TETHER_BENCH_STUB_SSH2) return ssh2StubPath;
  return resolve.call(this, request, ...rest);
};
const vscode = require(stubPath); // the stub's own load is not part of the measurement

const [bundle, storageDir] = process.argv.slice(2);
const t0 = performance.now();
const extension = require(bundle);
const t1 = performance.now();
extension.activate(vscode.__stubContext(storageDir));
const t2 = performance.now();
// Work activate() started asynchronously (settings reads, restore): until the loop is idle.
setImmediate(() => {
  setTimeout(() => {
    const t3 = performance.now();
    process.stdout.write(`${JSON.stringify({ requireMs: t1 - t0, activateMs: t2 - t1, settledMs: t3 - t0 })}\n`);
    process.exit(0);
  }, 0);
});
