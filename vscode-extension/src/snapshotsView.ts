/**
 * The "VM Snapshots" view in the Run and Debug side bar: the active vmdbg
 * session's snapshots (`vmdbg/snapshots`), newest first, each with a
 * restore action; the view's title has "Take VM snapshot". It refreshes
 * when the active session changes and after each take or restore.
 */

import * as vscode from 'vscode';

import { listSnapshots, SnapshotRow } from './snapshots';

export const VIEW_ID = 'vmdbg.snapshots';
/** A row's contextValue, for its inline restore action (package.json). */
export const ROW_CONTEXT = 'vmdbgSnapshot';

export class SnapshotsView implements vscode.TreeDataProvider<SnapshotRow>, vscode.Disposable {
  private changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private subscriptions: vscode.Disposable[];

  constructor(private readonly session: () => vscode.DebugSession | undefined) {
    this.subscriptions = [
      vscode.window.registerTreeDataProvider(VIEW_ID, this),
      vscode.debug.onDidChangeActiveDebugSession(() => this.refresh()),
      vscode.debug.onDidTerminateDebugSession(() => this.refresh()),
    ];
  }

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(row: SnapshotRow): vscode.TreeItem {
    const item = new vscode.TreeItem(row.name, vscode.TreeItemCollapsibleState.None);
    item.description = row.description;
    item.contextValue = ROW_CONTEXT;
    item.iconPath = new vscode.ThemeIcon('device-camera');
    item.tooltip = `VM snapshot "${row.name}": restore puts the VM back to this moment`;
    return item;
  }

  async getChildren(row?: SnapshotRow): Promise<SnapshotRow[]> {
    if (row) return [];
    try {
      return await listSnapshots(this.session());
    } catch {
      // A session that is starting or ending has no VM to ask.
      return [];
    }
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
    this.changed.dispose();
  }
}
