/**
 * The vmdbg extension: a thin layer that starts `vmdbg dap` for debug
 * sessions of type `vmdbg`, fills in launch configurations, shows the
 * guest's serial console in a terminal bound to the session, and the VM's
 * state in the status bar. The DAP server does all the debugging.
 */

import * as cp from 'child_process';
import * as fs from 'fs';
import * as vscode from 'vscode';

import { findVmdbg, isTooOld, MIN_VERSION, parseVersion } from './adapterPath';
import { initialConfigurations, resolveConfiguration } from './configuration';
import { nextSnapshotName, snapshotNameProblem, SnapshotRow } from './snapshots';
import { SnapshotsView } from './snapshotsView';
import { VmdbgTests } from './testing';

const TYPE = 'vmdbg';

export function activate(context: vscode.ExtensionContext): void {
  const consoles = new ConsoleTerminals();
  const status = new VmStatus();
  const snapshots = new SnapshotsView(() => {
    const session = vscode.debug.activeDebugSession;
    return session?.type === TYPE ? session : undefined;
  });
  context.subscriptions.push(
    consoles,
    status,
    snapshots,
    vscode.debug.registerDebugConfigurationProvider(TYPE, new ConfigurationProvider()),
    vscode.debug.registerDebugAdapterDescriptorFactory(TYPE, new AdapterFactory(context.extensionPath)),
    vscode.debug.registerDebugAdapterTrackerFactory(TYPE, {
      createDebugAdapterTracker: (session) => new SessionTracker(session, consoles, status),
    }),
    vscode.commands.registerCommand('vmdbg.openConsole', () => {
      const session = vscode.debug.activeDebugSession;
      if (session?.type !== TYPE) {
        void vscode.window.showInformationMessage('No vmdbg debug session is active; start one with F5.');
        return;
      }
      consoles.show(session);
    }),
    vscode.commands.registerCommand('vmdbg.takeSnapshot', async () => {
      let took: Awaited<ReturnType<typeof takeSnapshot>>;
      try {
        took = await takeSnapshot();
      } finally {
        await (took ? snapshots.taken(took.session, took.name) : snapshots.refresh());
      }
    }),
    vscode.commands.registerCommand('vmdbg.restoreSnapshot', (row?: SnapshotRow) =>
      restoreSnapshot(row?.name).finally(() => void snapshots.refresh()),
    ),
    vscode.commands.registerCommand('vmdbg.refreshSnapshots', () => snapshots.refresh()),
    new VmdbgTests(() => {
      const found = lookUpVmdbg(context.extensionPath);
      return 'error' in found ? 'vmdbg' : found.path;
    }),
  );
}

/** The active vmdbg session, or a message saying there is none. */
function activeSession(): vscode.DebugSession | undefined {
  const session = vscode.debug.activeDebugSession;
  if (session?.type !== TYPE) {
    void vscode.window.showInformationMessage('No vmdbg debug session is active; start one with F5.');
    return undefined;
  }
  return session;
}

/** Asks for a name and takes the snapshot; what it took, if it did. */
async function takeSnapshot(): Promise<{ session: vscode.DebugSession; name: string } | undefined> {
  const session = activeSession();
  if (!session) return undefined;
  const taken: { snapshots: { name: string }[] } = await session.customRequest('vmdbg/snapshots');
  const name = await vscode.window.showInputBox({
    prompt: 'Name of the VM snapshot (letters, digits, -, _ and .)',
    value: nextSnapshotName(taken.snapshots.map((s) => s.name)),
    validateInput: snapshotNameProblem,
  });
  if (!name) return undefined;
  try {
    const reply: { milliseconds: number } = await session.customRequest('vmdbg/snapshot', { name });
    void vscode.window.showInformationMessage(`VM snapshot "${name}" taken (${reply.milliseconds} ms).`);
    return { session, name };
  } catch (e) {
    void vscode.window.showErrorMessage(`vmdbg: ${(e as Error).message}`);
    return undefined;
  }
}

/** Restores `chosen` (a row of the Snapshots view), or one picked. */
async function restoreSnapshot(chosen?: string): Promise<void> {
  const session = activeSession();
  if (!session) return;
  if (chosen) {
    try {
      await session.customRequest('vmdbg/restore', { name: chosen });
    } catch (e) {
      void vscode.window.showErrorMessage(`vmdbg: ${(e as Error).message}`);
    }
    return;
  }
  const taken: { snapshots: { name: string }[] } = await session.customRequest('vmdbg/snapshots');
  if (taken.snapshots.length === 0) {
    void vscode.window.showInformationMessage('No VM snapshot taken in this session yet ("vmdbg: Take VM snapshot").');
    return;
  }
  const name = await vscode.window.showQuickPick(taken.snapshots.map((s) => s.name).reverse(), {
    placeHolder: 'Restore the VM to which snapshot?',
  });
  if (!name) return;
  try {
    await session.customRequest('vmdbg/restore', { name });
  } catch (e) {
    void vscode.window.showErrorMessage(`vmdbg: ${(e as Error).message}`);
  }
}

export function deactivate(): void {}

class ConfigurationProvider implements vscode.DebugConfigurationProvider {
  provideDebugConfigurations(): vscode.DebugConfiguration[] {
    return initialConfigurations as vscode.DebugConfiguration[];
  }

  async resolveDebugConfiguration(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): Promise<vscode.DebugConfiguration | undefined | null> {
    const editor = vscode.window.activeTextEditor;
    const resolution = resolveConfiguration(config, {
      activeFile: editor && { path: editor.document.uri.fsPath, languageId: editor.document.languageId },
      workspaceFolder: folder?.uri.fsPath,
      exists: (p) => fs.existsSync(p),
      read: (p) => {
        try {
          return fs.readFileSync(p, 'utf8');
        } catch {
          return undefined;
        }
      },
    });
    if ('error' in resolution) {
      const open = 'Open launch.json';
      const choice = await vscode.window.showErrorMessage(resolution.error, open);
      // null asks VS Code to open launch.json; undefined just aborts.
      return choice === open ? null : undefined;
    }
    return resolution.config as vscode.DebugConfiguration;
  }
}

/** The vmdbg binary: the `vmdbg.path` setting, the bundled one, or PATH's. */
function lookUpVmdbg(extensionPath: string): ReturnType<typeof findVmdbg> {
  return findVmdbg({
    setting: vscode.workspace.getConfiguration('vmdbg').get<string>('path') ?? '',
    extensionPath,
    pathEnv: process.env.PATH ?? '',
    isExecutable: (p) => {
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return fs.statSync(p).isFile();
      } catch {
        return false;
      }
    },
  });
}

class AdapterFactory implements vscode.DebugAdapterDescriptorFactory {
  private checked = new Map<string, string | undefined>();

  constructor(private readonly extensionPath: string) {}

  createDebugAdapterDescriptor(): vscode.ProviderResult<vscode.DebugAdapterDescriptor> {
    const found = lookUpVmdbg(this.extensionPath);
    if ('error' in found) {
      void vscode.window.showErrorMessage(found.error);
      throw new Error(found.error);
    }
    const problem = this.versionProblem(found.path);
    if (problem) {
      void vscode.window.showErrorMessage(problem);
      throw new Error(problem);
    }
    return new vscode.DebugAdapterExecutable(found.path, ['dap']);
  }

  /** Why this binary cannot serve us, or undefined; asked once per path. */
  private versionProblem(path: string): string | undefined {
    if (!this.checked.has(path)) {
      let problem: string | undefined;
      try {
        const out = cp.execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
        const version = parseVersion(out);
        if (!version) problem = `${path} --version printed "${out.trim()}", not a vmdbg version.`;
        else if (isTooOld(version)) {
          problem = `${path} is vmdbg ${version.join('.')}; this extension needs ${MIN_VERSION.join('.')} or newer. Update vmdbg.`;
        }
      } catch (e) {
        problem = `${path} --version failed: ${(e as Error).message}`;
      }
      this.checked.set(path, problem);
    }
    return this.checked.get(path);
  }
}

/** Watches one session's DAP traffic for the console and the VM state. */
class SessionTracker implements vscode.DebugAdapterTracker {
  constructor(
    private readonly session: vscode.DebugSession,
    private readonly consoles: ConsoleTerminals,
    private readonly status: VmStatus,
  ) {}

  onDidSendMessage(message: { type?: string; event?: string; body?: Record<string, unknown> }): void {
    if (message.type !== 'event') return;
    const body = message.body ?? {};
    switch (message.event) {
      case 'output':
        if (body.category === 'console' && typeof body.output === 'string') {
          this.consoles.write(this.session, body.output);
        }
        break;
      case 'process':
      case 'continued':
        this.status.set(this.session, 'running');
        break;
      case 'stopped':
        this.status.set(this.session, `paused (${String(body.reason ?? 'stopped')})`);
        break;
      case 'exited':
        this.status.set(this.session, `exited with ${String(body.exitCode)}`);
        break;
      case 'terminated':
        this.status.set(this.session, 'stopped');
        break;
    }
  }

  onWillStopSession(): void {
    this.status.clear(this.session);
  }
}

/**
 * The guest's serial console, one terminal per debug session. Output comes
 * from the session's `console` output events; what the user types goes back
 * with the custom request `vmdbg/consoleInput`.
 */
class ConsoleTerminals implements vscode.Disposable {
  private terminals = new Map<string, { terminal: vscode.Terminal; emitter: vscode.EventEmitter<string>; backlog: string[]; open: boolean }>();

  write(session: vscode.DebugSession, text: string): void {
    const entry = this.entry(session);
    const crlf = text.replace(/\r?\n/g, '\r\n');
    if (entry.open) entry.emitter.fire(crlf);
    else entry.backlog.push(crlf);
  }

  show(session: vscode.DebugSession): void {
    this.entry(session).terminal.show(true);
  }

  private entry(session: vscode.DebugSession) {
    let entry = this.terminals.get(session.id);
    if (entry) return entry;
    const emitter = new vscode.EventEmitter<string>();
    const created = { terminal: undefined as unknown as vscode.Terminal, emitter, backlog: [] as string[], open: false };
    const pty: vscode.Pseudoterminal = {
      onDidWrite: emitter.event,
      open: () => {
        created.open = true;
        for (const chunk of created.backlog.splice(0)) emitter.fire(chunk);
      },
      close: () => {
        created.open = false;
      },
      handleInput: (data) => {
        void Promise.resolve(session.customRequest('vmdbg/consoleInput', { text: data })).catch((e: Error) =>
          emitter.fire(`\r\n[vmdbg: console input not delivered: ${e.message}]\r\n`),
        );
      },
    };
    created.terminal = vscode.window.createTerminal({ name: `VM console: ${session.name}`, pty });
    this.terminals.set(session.id, created);
    entry = created;
    return entry;
  }

  dispose(): void {
    for (const { terminal, emitter } of this.terminals.values()) {
      emitter.dispose();
      terminal.dispose();
    }
    this.terminals.clear();
  }
}

/** `$(vm) VM: running` in the status bar while a vmdbg session lives. */
class VmStatus implements vscode.Disposable {
  private item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  private states = new Map<string, string>();

  constructor() {
    this.item.command = 'vmdbg.openConsole';
    this.item.tooltip = 'vmdbg: the VM of the active debug session (click for its console)';
  }

  set(session: vscode.DebugSession, state: string): void {
    this.states.set(session.id, state);
    this.render();
  }

  clear(session: vscode.DebugSession): void {
    this.states.delete(session.id);
    this.render();
  }

  private render(): void {
    const active = vscode.debug.activeDebugSession;
    const state = (active && this.states.get(active.id)) ?? [...this.states.values()].pop();
    if (state === undefined) {
      this.item.hide();
      return;
    }
    this.item.text = `$(vm) VM: ${state}`;
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
