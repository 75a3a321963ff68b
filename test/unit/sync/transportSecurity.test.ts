import assert from 'node:assert/strict';
import { isLoopbackHost, needsPlainHttpConfirmation, transportSecurity } from '../../../src/sync/transportSecurity';

describe('sync/transportSecurity', () => {
  it('asks before plain http:// to another machine, and only then', () => {
    for (const url of ['http://sync.example.com:8787', 'http://192.168.1.10:8787', 'http://[2001:db8::1]:8787/', ' http://10.0.0.1 ', 'http://127.example.com', 'http://localhost.evil.com']) {
      assert.equal(needsPlainHttpConfirmation(url), true, url);
    }
    for (const url of ['https://sync.example.com', 'http://127.0.0.1:8787', 'http://127.1.2.3', 'http://localhost:8787', 'http://LOCALHOST', 'http://[::1]:8787', 'http://tether.localhost', 'not a url', 'ftp://x']) {
      assert.equal(needsPlainHttpConfirmation(url), false, url);
    }
  });

  it('says which host is reached in the clear', () => {
    assert.deepEqual(transportSecurity('http://sync.example.com:8787/x'), { kind: 'plain', host: 'sync.example.com:8787' });
    assert.deepEqual(transportSecurity('https://sync.example.com'), { kind: 'tls' });
    assert.deepEqual(transportSecurity('http://127.0.0.1:1'), { kind: 'loopback' });
    assert.equal(transportSecurity('mailto:x@y'), undefined);
    assert.ok(isLoopbackHost('[::ffff:127.0.0.1]'));
    assert.ok(!isLoopbackHost('128.0.0.1'));
  });
});
