import * as assert from 'assert';
import { readFileSync } from 'fs';
import { join } from 'path';

import { listSnapshots, nextSnapshotName, SnapshotList, snapshotNameProblem, snapshotRows } from '../../src/snapshots';

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

  /** A session whose `vmdbg/snapshots` answers only when the test says. */
  function slowSession() {
    const pending: ((names: string[]) => void)[] = [];
    const session = {
      customRequest: (command: string) => {
        assert.strictEqual(command, 'vmdbg/snapshots');
        return new Promise<unknown>((res) => pending.push((names) => res({ snapshots: names.map((name) => ({ name })) })));
      },
    };
    return { session, pending };
  }

  it('keeps a take shown when a fetch asked before the take answers after it', async () => {
    let fired = 0;
    const list = new SnapshotList(() => fired++);
    const { session, pending } = slowSession();
    const early = list.reload(session);
    list.taken(session, 'snapshot-1');
    assert.deepStrictEqual(list.rows, [{ name: 'snapshot-1', description: 'newest' }]);
    const firedAfterTake = fired;
    // The DAP server answers the earlier fetch as it was before the take.
    pending[0]([]);
    await early;
    assert.deepStrictEqual(list.rows, [{ name: 'snapshot-1', description: 'newest' }]);
    assert.strictEqual(fired, firedAfterTake, 'a dropped answer must not redraw the tree');
  });

  it('shows the newest fetch when fetches answer out of order', async () => {
    const list = new SnapshotList(() => {});
    const { session, pending } = slowSession();
    const first = list.reload(session);
    const second = list.reload(session);
    pending[1](['a', 'b']);
    await second;
    pending[0](['a']);
    await first;
    assert.deepStrictEqual(list.rows, [{ name: 'b', description: 'newest' }, { name: 'a' }]);
  });

  it('tells the tree after every change, and forgets rows when the session goes', async () => {
    const seen: string[][] = [];
    const list = new SnapshotList(() => seen.push(list.rows.map((r) => r.name)));
    const { session, pending } = slowSession();
    const fetched = list.reload(session);
    pending[0](['boot']);
    await fetched;
    list.taken(session, 'loop');
    await list.reload(undefined);
    assert.deepStrictEqual(seen, [[], ['boot'], ['loop', 'boot'], []]);
  });

  it('ignores a take reported for a session that is no longer shown', async () => {
    const list = new SnapshotList(() => {});
    const one = slowSession();
    const other = slowSession();
    const fetched = list.reload(other.session);
    other.pending[0](['x']);
    await fetched;
    list.taken(one.session, 'snapshot-1');
    assert.deepStrictEqual(list.rows, [{ name: 'x', description: 'newest' }]);
  });

  it('keeps the rows when a fetch of the same session fails (a session that is ending)', async () => {
    const list = new SnapshotList(() => {});
    let fail = false;
    const session = {
      customRequest: async () => {
        if (fail) throw new Error('no VM');
        return { snapshots: [{ name: 'a' }] };
      },
    };
    await list.reload(session);
    fail = true;
    await list.reload(session);
    assert.deepStrictEqual(list.rows, [{ name: 'a', description: 'newest' }]);
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
