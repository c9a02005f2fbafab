/**
 * VS Code's Testing view over `vmdbg test`: a TestController whose items
 * are the test binaries of the `vmdbg.tests` setting and their tests
 * (listed in the guest by `vmdbg test --list`), a Run profile that runs
 * them through `vmdbg test --format json` (each test from the set-up
 * snapshot: results, durations, output, failure messages at the
 * framework's source location) and a Debug profile that starts a `vmdbg`
 * debug session on one test (`"test": NAME`, the same `setup`). The data
 * work is in testEvents.ts.
 */

import * as cp from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';

import {
  debugConfiguration,
  failureLocation,
  failureMessage,
  Framework,
  frameworkOf,
  definitionPattern,
  endOfDefinition,
  LineSplitter,
  lineOf,
  listCommand,
  parseEvent,
  parseTestSettings,
  runCommand,
  TestBinary,
  TestEvent,
} from './testEvents';

const TYPE = 'vmdbg';

interface BinaryData {
  binary: TestBinary;
  framework: Framework;
}

export class VmdbgTests implements vscode.Disposable {
  private readonly controller = vscode.tests.createTestController('vmdbg', 'vmdbg (tests in a VM)');
  private readonly binaries = new WeakMap<vscode.TestItem, BinaryData>();
  private readonly exitCodes = new Map<string, number>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly vmdbgPath: () => string) {
    const c = this.controller;
    c.resolveHandler = async (item) => {
      if (!item) this.loadSettings();
      else await this.listTests(item);
    };
    c.refreshHandler = async () => {
      this.loadSettings();
      await Promise.all([...this.binaryItems()].map((i) => this.listTests(i)));
    };
    c.createRunProfile('Run in VM', vscode.TestRunProfileKind.Run, (r, t) => this.run(r, t), true);
    c.createRunProfile('Debug in VM', vscode.TestRunProfileKind.Debug, (r, t) => this.debug(r, t), true);
    this.disposables.push(
      c,
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('vmdbg.tests')) this.loadSettings();
      }),
      vscode.debug.registerDebugAdapterTrackerFactory(TYPE, {
        createDebugAdapterTracker: (session) =>
          session.configuration.test === undefined
            ? undefined
            : {
                onDidSendMessage: (m: { type?: string; event?: string; body?: { exitCode?: number } }) => {
                  if (m.type === 'event' && m.event === 'exited' && typeof m.body?.exitCode === 'number') {
                    this.exitCodes.set(session.id, m.body.exitCode);
                  }
                },
              },
      }),
    );
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  private *binaryItems(): Iterable<vscode.TestItem> {
    const items: vscode.TestItem[] = [];
    this.controller.items.forEach((i) => items.push(i));
    yield* items;
  }

  /** One item per configured binary (tests listed when it is expanded or run). */
  private loadSettings(): void {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const { binaries, errors } = parseTestSettings(vscode.workspace.getConfiguration('vmdbg').get('tests'), folder);
    for (const e of errors) void vscode.window.showErrorMessage(e);
    const items: vscode.TestItem[] = [];
    for (const b of binaries) {
      const item = this.controller.createTestItem(b.binary, path.basename(b.binary), vscode.Uri.file(b.binary));
      item.canResolveChildren = true;
      let framework: Framework = 'libtest';
      try {
        framework = frameworkOf(fs.readFileSync(b.binary));
      } catch (e) {
        item.error = `cannot read the test binary: ${(e as Error).message} (build it, e.g. cargo test --no-run)`;
      }
      this.binaries.set(item, { binary: b, framework });
      items.push(item);
    }
    this.controller.items.replace(items);
  }

  /** Runs `vmdbg`, feeding each JSON event to `onEvent` and other output to `onText`. */
  private spawn(
    args: string[],
    onEvent: (e: TestEvent) => void,
    onText: (text: string) => void,
    token?: vscode.CancellationToken,
  ): Promise<number | null> {
    return new Promise((resolve) => {
      const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
      const child = cp.spawn(this.vmdbgPath(), args, { cwd: folder, stdio: ['ignore', 'pipe', 'pipe'] });
      const lines = new LineSplitter();
      const feed = (line: string) => {
        const e = parseEvent(line);
        if (e) onEvent(e);
        else if (line.trim()) onText(`${line}\n`);
      };
      child.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(d).forEach(feed));
      child.stderr.setEncoding('utf8').on('data', (d: string) => onText(d));
      const cancel = token?.onCancellationRequested(() => child.kill('SIGINT'));
      child.on('error', (e) => {
        onText(`vmdbg: cannot start ${this.vmdbgPath()}: ${e.message}\n`);
      });
      child.on('close', (code) => {
        lines.end().forEach(feed);
        cancel?.dispose();
        resolve(code);
      });
    });
  }

  /** Lists a binary's tests in the guest, with where each is defined. */
  private async listTests(item: vscode.TestItem): Promise<void> {
    const data = this.binaries.get(item);
    if (!data) return;
    item.busy = true;
    const names: { name: string; ignored: boolean }[] = [];
    let log = '';
    const code = await this.spawn(
      listCommand(data.binary),
      (e) => {
        if (e.type === 'test' && e.event === 'listed') names.push({ name: e.name, ignored: e.ignored });
      },
      (t) => (log += t),
    );
    item.busy = false;
    if (code !== 0) {
      item.error = `vmdbg test --list failed (${code}): ${log.trim().split('\n').slice(-3).join(' ')}`;
      return;
    }
    item.error = undefined;
    const sources = await this.sources(data.framework);
    const children = names.map(({ name, ignored }) => {
      const where = this.definition(sources, name, data.framework);
      const child = this.controller.createTestItem(`${item.id}#${name}`, name, where?.uri);
      if (where) child.range = new vscode.Range(where.line, 0, where.end, 0);
      if (ignored) child.tags = [new vscode.TestTag('ignored')];
      return child;
    });
    item.children.replace(children);
  }

  private async sources(framework: Framework): Promise<{ uri: vscode.Uri; text: string }[]> {
    const glob = framework === 'googletest' ? '**/*.{cc,cpp,cxx}' : '**/*.rs';
    const uris = await vscode.workspace.findFiles(glob, '**/{target,node_modules,.git}/**', 2000);
    return uris.map((uri) => {
      try {
        return { uri, text: fs.readFileSync(uri.fsPath, 'utf8') };
      } catch {
        return { uri, text: '' };
      }
    });
  }

  private definition(sources: { uri: vscode.Uri; text: string }[], name: string, framework: Framework) {
    const pattern = definitionPattern(name, framework);
    for (const s of sources) {
      const line = lineOf(s.text, pattern);
      if (line !== undefined) return { uri: s.uri, line, end: endOfDefinition(s.text, line) };
    }
    return undefined;
  }

  /** The binaries a request covers, each with the tests asked for (undefined: all of them). */
  private async selection(request: vscode.TestRunRequest): Promise<Map<vscode.TestItem, vscode.TestItem[] | undefined>> {
    const wanted = new Map<vscode.TestItem, vscode.TestItem[] | undefined>();
    const roots = request.include ?? [...this.binaryItems()];
    const excluded = new Set(request.exclude ?? []);
    for (const item of roots) {
      if (excluded.has(item)) continue;
      if (this.binaries.has(item)) {
        if (item.children.size === 0) await this.listTests(item);
        wanted.set(item, undefined);
      } else if (item.parent && !wanted.has(item.parent)) {
        wanted.set(item.parent, [item]);
      } else if (item.parent) {
        wanted.get(item.parent)?.push(item);
      }
    }
    if (excluded.size) {
      for (const [binary, tests] of wanted) {
        if (tests === undefined) {
          const all: vscode.TestItem[] = [];
          binary.children.forEach((c) => all.push(c));
          wanted.set(binary, all.filter((c) => !excluded.has(c)));
        }
      }
    }
    return wanted;
  }

  private async run(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const run = this.controller.createTestRun(request);
    try {
      for (const [binaryItem, tests] of await this.selection(request)) {
        if (token.isCancellationRequested) break;
        const data = this.binaries.get(binaryItem)!;
        const byName = new Map<string, vscode.TestItem>();
        binaryItem.children.forEach((c) => byName.set(c.label, c));
        (tests ?? [...byName.values()]).forEach((t) => run.enqueued(t));
        const args = runCommand(data.binary, data.framework, tests?.map((t) => t.label));
        run.appendOutput(`$ vmdbg ${args.join(' ')}\r\n`);
        const seen = new Set<string>();
        const code = await this.spawn(
          args,
          (e) => {
            if (e.type !== 'test' || e.event === 'listed') return;
            let item = byName.get(e.name);
            if (!item) {
              item = this.controller.createTestItem(`${binaryItem.id}#${e.name}`, e.name);
              binaryItem.children.add(item);
              byName.set(e.name, item);
            }
            if (e.event === 'started') {
              run.started(item);
              return;
            }
            seen.add(e.name);
            const output = `${e.stdout}${e.stderr}`;
            if (output) run.appendOutput(output.replace(/\r?\n/g, '\r\n'), undefined, item);
            const ms = e.exec_time * 1000;
            if (e.event === 'ok') run.passed(item, ms);
            else if (e.event === 'ignored') run.skipped(item);
            else {
              const message = new vscode.TestMessage(failureMessage(e));
              const where = failureLocation(output);
              if (where) message.location = this.locate(where, binaryItem);
              run.failed(item, message, ms);
            }
          },
          (t) => run.appendOutput(t.replace(/\r?\n/g, '\r\n')),
          token,
        );
        if (code !== 0 && code !== 101) run.appendOutput(`vmdbg test ended with status ${code}\r\n`);
        for (const t of tests ?? [...byName.values()]) {
          if (!seen.has(t.label) && !token.isCancellationRequested) {
            run.errored(t, new vscode.TestMessage(`vmdbg test ended (status ${code}) without a result for this test; see the test output`));
          }
        }
      }
    } catch (e) {
      run.appendOutput(`vmdbg: ${(e as Error).message}\r\n`);
      void vscode.window.showErrorMessage(`vmdbg tests: ${(e as Error).message}`);
    } finally {
      run.end();
    }
  }

  /** A framework's file path (often relative to its crate or build directory) as a location. */
  private locate(where: { file: string; line: number; column?: number }, binaryItem: vscode.TestItem): vscode.Location {
    const position = new vscode.Position(where.line - 1, Math.max(0, (where.column ?? 1) - 1));
    if (path.isAbsolute(where.file)) return new vscode.Location(vscode.Uri.file(where.file), position);
    // Relative to the crate: the crate holding the test whose definition we found.
    let dir: string | undefined;
    binaryItem.children.forEach((c) => {
      if (dir || !c.uri) return;
      let d = path.dirname(c.uri.fsPath);
      while (d !== path.dirname(d)) {
        if (fs.existsSync(path.join(d, where.file))) {
          dir = d;
          return;
        }
        d = path.dirname(d);
      }
    });
    const base = dir ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '/';
    return new vscode.Location(vscode.Uri.file(path.join(base, where.file)), position);
  }

  /** Debugs one test (the first one asked for) in a vmdbg session. */
  private async debug(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const selected = await this.selection(request);
    let target: { binary: vscode.TestItem; test: vscode.TestItem } | undefined;
    for (const [binary, tests] of selected) {
      const first = tests?.[0] ?? (() => {
        let c: vscode.TestItem | undefined;
        binary.children.forEach((x) => (c = c ?? x));
        return c;
      })();
      if (first) {
        target = { binary, test: first };
        break;
      }
    }
    if (!target) {
      void vscode.window.showInformationMessage('vmdbg: no test to debug; pick one test in the Testing view.');
      return;
    }
    const data = this.binaries.get(target.binary)!;
    const run = this.controller.createTestRun(request, `Debug ${target.test.label}`, false);
    run.started(target.test);
    const folder = vscode.workspace.workspaceFolders?.[0];
    const ended = new Promise<vscode.DebugSession>((resolve) => {
      const sub = vscode.debug.onDidTerminateDebugSession((s) => {
        if (s.configuration.test === target!.test.label) {
          sub.dispose();
          resolve(s);
        }
      });
    });
    const started = await vscode.debug.startDebugging(folder, debugConfiguration(data.binary, target.test.label) as vscode.DebugConfiguration, {
      testRun: run,
    } as vscode.DebugSessionOptions);
    if (!started) {
      run.errored(target.test, new vscode.TestMessage('the debug session did not start'));
      run.end();
      return;
    }
    const cancel = token.onCancellationRequested(() => void vscode.debug.stopDebugging());
    const session = await ended;
    cancel.dispose();
    const code = this.exitCodes.get(session.id);
    this.exitCodes.delete(session.id);
    if (code === 0) run.passed(target.test);
    else if (code !== undefined) run.failed(target.test, new vscode.TestMessage(`the test exited with status ${code}`));
    else run.skipped(target.test);
    run.end();
  }
}
