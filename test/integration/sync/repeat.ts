/**
 * Runs test/integration/sync/syncClient.test.ts several times in ONE mocha process, to show that it
 * does not flake (issue 13). Not part of the suite (the name does not end in .test.ts):
 *
 *   TETHER_REPEAT=20 npx mocha --require tsx/cjs --extension ts --timeout 60000 --exit test/integration/sync/repeat.ts
 *
 * Each round loads the file afresh, so every round has its own server, data dir and devices.
 */
const file = require.resolve('./syncClient.test');
const rounds = Math.max(1, Number(process.env.TETHER_REPEAT ?? 20));

for (let round = 1; round <= rounds; round++) {
  describe(`round ${round} of ${rounds}`, function () {
    delete require.cache[file];
    require(file);
  });
}
