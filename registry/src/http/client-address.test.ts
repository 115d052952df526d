import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clientAddress } from './client-address.ts';

describe('client address', () => {
  it('counts an IPv4 client by its address, also when it arrives IPv4-mapped', () => {
    assert.equal(clientAddress('10.1.2.3'), '10.1.2.3');
    assert.equal(clientAddress('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(clientAddress('::FFFF:127.0.0.1'), '127.0.0.1');
  });

  it('counts an IPv6 client by its /64, however the address is written', () => {
    assert.equal(clientAddress('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(clientAddress('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
    assert.equal(clientAddress('2001:0db8:0001:0002:aaaa::1'), '2001:db8:1:2::/64', 'another host of the same /64 is the same client');
    assert.equal(clientAddress('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientAddress('::1'), '0:0:0:0::/64');
    assert.equal(clientAddress('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(clientAddress('64:ff9b::192.0.2.33'), '64:ff9b:0:0::/64');
  });

  it('keeps what it cannot parse as it is, and names a missing address', () => {
    assert.equal(clientAddress('1:2:3'), '1:2:3');
    assert.equal(clientAddress(undefined), 'unknown');
  });
});
