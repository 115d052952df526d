import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_MOUNT_ATTEMPTS, MAX_REMEMBERED_DIGESTS, MAX_REMEMBERED_REPOSITORIES, mountSources, parseRecord, withPush } from './push-locations.ts';

const d = (n: number) => `sha256:${String(n).padStart(64, '0')}`;

describe('where earlier pushes put blobs', () => {
  it('names the repositories holding a blob, the latest push first, then the ones the user named, never the target', () => {
    let record = withPush(null, 'r:5000', 'old', [d(1), d(2)]);
    record = withPush(record, 'r:5000', 'new', [d(1)]);
    assert.deepEqual(mountSources(record, 'target', ['named'], d(1)), ['new', 'old', 'named']);
    assert.deepEqual(mountSources(record, 'target', ['named'], d(2)), ['old', 'named']);
    assert.deepEqual(mountSources(record, 'target', [], d(3)), []);
    assert.deepEqual(mountSources(record, 'new', ['new'], d(1)), ['old'], 'the target is never a source');
  });

  it('tries only a few sources for one blob', () => {
    assert.equal(mountSources(null, 't', ['a', 'b', 'c', 'd', 'e'], d(1)).length, MAX_MOUNT_ATTEMPTS);
  });

  it('moves a repository pushed again to the front, its new blobs before its old ones, and forgets the oldest beyond the bounds', () => {
    let record = withPush(null, 'r', 'a', [d(1)]);
    record = withPush(record, 'r', 'b', [d(2)]);
    record = withPush(record, 'r', 'a', [d(3), d(1)]);
    assert.deepEqual(record.repositories, [{ name: 'a', digests: [d(3), d(1)] }, { name: 'b', digests: [d(2)] }]);
    const many = Array.from({ length: MAX_REMEMBERED_DIGESTS }, (_, i) => d(100 + i));
    record = withPush(record, 'r', 'a', many);
    assert.deepEqual(record.repositories[0]!.digests, many, 'the oldest digests fell off');
    for (let i = 0; i < MAX_REMEMBERED_REPOSITORIES + 4; i++) record = withPush(record, 'r', `repo${i}`, [d(i)]);
    assert.equal(record.repositories.length, MAX_REMEMBERED_REPOSITORIES);
    assert.equal(record.repositories[0]!.name, `repo${MAX_REMEMBERED_REPOSITORIES + 3}`);
  });

  it('reads back only what is a record of that registry, dropping entries that are not repositories and digests', () => {
    assert.equal(parseRecord(null, 'r'), null);
    assert.equal(parseRecord({ registry: 'other', repositories: [] }, 'r'), null);
    const parsed = parseRecord(
      {
        registry: 'r',
        repositories: [
          { name: 'ok', digests: [d(1)] },
          { name: '../escape', digests: [d(1)] },
          { name: 'bad-digest', digests: ['sha256:xyz'] },
          { name: 'no-digests' },
        ],
      },
      'r',
    );
    assert.deepEqual(parsed, { registry: 'r', repositories: [{ name: 'ok', digests: [d(1)] }] });
  });
});
