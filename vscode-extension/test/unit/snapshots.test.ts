import * as assert from 'assert';
import { readFileSync } from 'fs';
import { join } from 'path';

import { listSnapshots, nextSnapshotName, snapshotNameProblem, snapshotRows } from '../../src/snapshots';

describe('the VM Snapshots view', () => {
  it('lists the answer of vmdbg/snapshots newest first, the newest marked', () => {
    const rows = snapshotRows({ snapshots: [{ name: 'boot' }, { name: 'before-crash' }, { name: 'loop' }] });
    assert.deepStrictEqual(rows, [{ name: 'loop', description: 'newest' }, { name: 'before-crash' }, { name: 'boot' }]);
  });

  it('shows nothing for an answer without snapshots or a malformed one', () => {
    assert.deepStrictEqual(snapshotRows({ snapshots: [] }), []);
    assert.deepStrictEqual(snapshotRows(undefined), []);
    assert.deepStrictEqual(snapshotRows({ snapshots: [{ name: 3 }, {}, { name: 'ok' }] }), [{ name: 'ok', description: 'newest' }]);
  });

  it('asks the session with vmdbg/snapshots, and nothing without a session', async () => {
    const asked: string[] = [];
    const session = {
      customRequest: async (command: string) => {
        asked.push(command);
        return { snapshots: [{ name: 'a' }] };
      },
    };
    assert.deepStrictEqual(await listSnapshots(session), [{ name: 'a', description: 'newest' }]);
    assert.deepStrictEqual(asked, ['vmdbg/snapshots']);
    assert.deepStrictEqual(await listSnapshots(undefined), []);
  });

  it('proposes the first free snapshot-N', () => {
    assert.strictEqual(nextSnapshotName([]), 'snapshot-1');
    assert.strictEqual(nextSnapshotName(['snapshot-1', 'snapshot-2']), 'snapshot-3');
    assert.strictEqual(nextSnapshotName(['x', 'snapshot-2']), 'snapshot-3');
  });

  it('refuses names the DAP server refuses', () => {
    assert.strictEqual(snapshotNameProblem('before-crash_1.2'), undefined);
    for (const bad of ['', 'has space', 'a/b', 'x'.repeat(65), 'semi;colon']) {
      assert.ok(snapshotNameProblem(bad), bad);
    }
  });

  it('is contributed to the debug side bar with take and restore actions', () => {
    const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
    const view = manifest.contributes.views.debug.find((v: { id: string }) => v.id === 'vmdbg.snapshots');
    assert.ok(view, 'no vmdbg.snapshots view under "debug"');
    const menus = manifest.contributes.menus;
    assert.ok(menus['view/title'].some((m: { command: string; when: string }) => m.command === 'vmdbg.takeSnapshot' && m.when.includes('vmdbg.snapshots')));
    assert.ok(
      menus['view/item/context'].some(
        (m: { command: string; when: string; group: string }) =>
          m.command === 'vmdbg.restoreSnapshot' && m.when.includes('viewItem == vmdbgSnapshot') && m.group === 'inline',
      ),
    );
  });
});
