import { rmSync } from 'node:fs';
import { conformanceSuite } from './conformance';
import { makeTempDir } from './harness';

describe('sync server with the file store', function () {
  let dataDir: string;
  before(() => {
    dataDir = makeTempDir('tether-file-store-');
  });
  after(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe('conformance', () => {
    conformanceSuite(() => ['--data-dir', dataDir], { eventIdsSurviveRestart: false });
  });
});
