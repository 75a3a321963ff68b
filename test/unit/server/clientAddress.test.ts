import * as assert from 'node:assert/strict';
import { ClientAddressResolver, parseAddressRange } from '../../../src/server/clientAddress';

describe('server/clientAddress', () => {
  it('parses addresses and CIDR ranges, and refuses anything else', () => {
    assert.deepEqual(parseAddressRange('10.0.0.0/8'), { address: '10.0.0.0', family: 'ipv4', prefix: 8 });
    assert.deepEqual(parseAddressRange('::1'), { address: '::1', family: 'ipv6', prefix: 128 });
    assert.deepEqual(parseAddressRange('::ffff:127.0.0.1'), { address: '127.0.0.1', family: 'ipv4', prefix: 32 });
    for (const bad of ['', 'proxy.example', '10.0.0.0/33', '::/129', '1.2.3.4/', '1.2.3.4; rm']) assert.equal(parseAddressRange(bad), undefined, bad);
  });

  it('believes X-Forwarded-For only from a trusted proxy', () => {
    const none = new ClientAddressResolver([]);
    assert.equal(none.resolve('203.0.113.9', '198.51.100.1'), '203.0.113.9');
    const trusting = new ClientAddressResolver(['127.0.0.1', '10.0.0.0/8']);
    assert.equal(trusting.resolve('203.0.113.9', '198.51.100.1'), '203.0.113.9', 'an untrusted peer cannot claim an address');
    assert.equal(trusting.resolve('::ffff:127.0.0.1', '198.51.100.1'), '198.51.100.1');
    assert.equal(trusting.resolve('127.0.0.1', undefined), '127.0.0.1');
  });

  it('walks the chain from the right, past trusted hops only', () => {
    const resolver = new ClientAddressResolver(['127.0.0.1', '10.0.0.0/8']);
    // The client wrote "1.1.1.1" itself; our proxies appended the real address and their own.
    assert.equal(resolver.resolve('127.0.0.1', '1.1.1.1, 198.51.100.7, 10.1.2.3'), '198.51.100.7');
    assert.equal(resolver.resolve('127.0.0.1', ['1.1.1.1', '198.51.100.7']), '198.51.100.7');
    // Garbage from the proxy: stop at the last address we can vouch for.
    assert.equal(resolver.resolve('127.0.0.1', '198.51.100.7, not-an-ip'), '127.0.0.1');
    assert.equal(resolver.resolve('127.0.0.1', '10.0.0.1, 10.0.0.2'), '10.0.0.1');
  });
});
