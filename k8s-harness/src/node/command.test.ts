import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { containerArgv, expand } from './command.ts';

const image = { entrypoint: ['/entry'], cmd: ['default', 'cmd'] };

describe('container argv (command/args against ENTRYPOINT/CMD)', () => {
  it('runs ENTRYPOINT + CMD when the container says nothing', () => {
    assert.deepEqual(containerArgv(image, {}, {}), ['/entry', 'default', 'cmd']);
  });
  it('args replace CMD only', () => {
    assert.deepEqual(containerArgv(image, { args: ['a'] }, {}), ['/entry', 'a']);
  });
  it('command replaces ENTRYPOINT and drops CMD', () => {
    assert.deepEqual(containerArgv(image, { command: ['/bin/sh'] }, {}), ['/bin/sh']);
    assert.deepEqual(containerArgv(image, { command: ['/bin/sh'], args: ['-c', 'x'] }, {}), ['/bin/sh', '-c', 'x']);
  });
  it('empty lists count as unset', () => {
    assert.deepEqual(containerArgv(image, { command: [], args: [] }, {}), ['/entry', 'default', 'cmd']);
  });
  it('expands $(VAR) in command and args, not in the image', () => {
    const img = { entrypoint: ['$(X)'], cmd: [] };
    assert.deepEqual(containerArgv(img, { args: ['--host', '$(POD_IP)'] }, { POD_IP: '127.244.0.3', X: 'no' }), ['$(X)', '--host', '127.244.0.3']);
  });
});

describe('$(VAR) expansion', () => {
  it('replaces defined variables, keeps undefined ones, and $$ escapes', () => {
    assert.equal(expand('$(A)-$(B)', { A: 'x' }), 'x-$(B)');
    assert.equal(expand('$$(A) costs $$5', { A: 'x' }), '$(A) costs $5');
    assert.equal(expand('tail $ and $(unclosed', {}), 'tail $ and $(unclosed');
  });
});
