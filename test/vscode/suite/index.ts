/**
 * The extensionTestsPath module: VS Code's extension host requires it and awaits run(). Bundled by
 * test/vscode/runTests.ts next to the *.test.js files it loads; mocha comes from node_modules.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import Mocha from 'mocha';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', color: true, timeout: 30_000, slow: 5_000 });
  const files = readdirSync(__dirname).filter((name) => name.endsWith('.test.js'));
  if (files.length === 0) return Promise.reject(new Error(`no *.test.js files in ${__dirname}`));
  for (const name of files) mocha.addFile(join(__dirname, name));
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures > 0 ? reject(new Error(`${failures} test(s) failed`)) : resolve()));
  });
}
