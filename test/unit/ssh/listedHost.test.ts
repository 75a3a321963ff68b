import assert from 'node:assert/strict';
import { resolveListedHost } from '../../../src/ssh/listedHost';

const configText = ['Host box', '  HostName Box.Example.COM', '  User dev', '  Port 2222', '  IdentityFile ~/.ssh/box_key', ''].join('\n');
const options = { configText, homeDir: '/home/me', localUser: 'me' };

describe('ssh/resolveListedHost: a host label another device listed', () => {
  it('uses the local alias when it names the same target, whatever the case of the host name', () => {
    const { host, note } = resolveListedHost({ hostLabel: 'box', user: 'dev', hostName: 'box.example.com', port: 2222 }, options);
    assert.equal(note, undefined);
    assert.ok(host.identityFiles.some((file) => file.endsWith('box_key')), 'the alias settings (IdentityFile) are kept');
  });

  it('does not use it for another user (user names are case-sensitive) or another port', () => {
    for (const listing of [
      { hostLabel: 'box', user: 'Dev', hostName: 'box.example.com', port: 2222 },
      { hostLabel: 'box', user: 'dev', hostName: 'box.example.com', port: 22 },
      { hostLabel: 'box', user: 'dev', hostName: 'other.example.com', port: 2222 },
    ]) {
      const { host, note } = resolveListedHost(listing, options);
      assert.match(note ?? '', /with default settings/, JSON.stringify(listing));
      assert.equal(host.identityFiles.some((file) => file.endsWith('box_key')), false);
      assert.equal(host.user, listing.user);
      assert.equal(host.port, listing.port);
    }
  });
});
