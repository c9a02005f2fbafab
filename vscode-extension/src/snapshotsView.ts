/**
 * The "VM Snapshots" view in the Run and Debug side bar: the active vmdbg
 * session's snapshots (`vmdbg/snapshots`), newest first, each with a
 * restore action; the view's title has "Take VM snapshot". Its rows are
 * state ([`SnapshotList`]): updated from a take's reply and from fetches
 * when the active session changes and after each take or restore, then
 * the tree is told; `getChildren` only reads them.
 */

import * as vscode from 'vscode';

import { SnapshotList, SnapshotRow, SnapshotSession } from './snapshots';

export const VIEW_ID = 'vmdbg.snapshots';
/** A row's contextValue, for its inline restore action (package.json). */
export const ROW_CONTEXT = 'vmdbgSnapshot';

export class SnapshotsView implements vscode.TreeDataProvider<SnapshotRow>, vscode.Disposable {
  private changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private list = new SnapshotList(() => this.changed.fire());
  private subscriptions: vscode.Disposable[];

  constructor(private readonly session: () => vscode.DebugSession | undefined) {
    this.subscriptions = [
      vscode.window.registerTreeDataProvider(VIEW_ID, this),
      vscode.debug.onDidChangeActiveDebugSession(() => this.refresh()),
      vscode.debug.onDidTerminateDebugSession(() => this.refresh()),
    ];
  }

  /** Fetches the active session's snapshots again. */
  refresh(): Promise<void> {
    return this.list.reload(this.session());
  }

  /** `session` took `name`: shown at once, then checked with a fetch. */
  taken(session: SnapshotSession, name: string): Promise<void> {
    this.list.taken(session, name);
    return this.refresh();
  }

  getTreeItem(row: SnapshotRow): vscode.TreeItem {
    const item = new vscode.TreeItem(row.name, vscode.TreeItemCollapsibleState.None);
    item.description = row.description;
    item.contextValue = ROW_CONTEXT;
    item.iconPath = new vscode.ThemeIcon('device-camera');
    item.tooltip = `VM snapshot "${row.name}": restore puts the VM back to this moment`;
    return item;
  }

  getChildren(row?: SnapshotRow): SnapshotRow[] {
    return row ? [] : this.list.rows;
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
    this.changed.dispose();
  }
}
