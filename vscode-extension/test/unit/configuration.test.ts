import * as assert from 'assert';
import { readFileSync } from 'fs';
import { join } from 'path';

import { cargoPackageName, guessProgram, initialConfigurations, resolveConfiguration, EditorContext } from '../../src/configuration';
import { findVmdbg, isTooOld, parseVersion } from '../../src/adapterPath';

function editor(files: Record<string, string>, active?: { path: string; languageId: string }): EditorContext {
  return {
    activeFile: active,
    workspaceFolder: '/ws',
    exists: (p) => p in files,
    read: (p) => files[p],
  };
}

describe('F5 without launch.json', () => {
  it('debugs the executable built from the active C file', () => {
    const r = resolveConfiguration({}, editor({ '/ws/hello': '' }, { path: '/ws/hello.c', languageId: 'c' }));
    assert.ok('config' in r, JSON.stringify(r));
    assert.deepStrictEqual(r.config, {
      type: 'vmdbg', request: 'launch', name: 'Debug program in VM',
      program: '/ws/hello', stopOnEntry: false, args: [], cwd: '/',
    });
  });

  it('falls back to a.out beside a C++ file', () => {
    const r = guessProgram(editor({ '/ws/src/a.out': '' }, { path: '/ws/src/main.cpp', languageId: 'cpp' }));
    assert.deepStrictEqual(r, { config: { program: '/ws/src/a.out' } });
  });

  it('says how to build when the C program is missing', () => {
    const r = resolveConfiguration({}, editor({}, { path: '/ws/hello.c', languageId: 'c' }));
    assert.ok('error' in r);
    assert.match(r.error, /cc -g -o hello hello\.c/);
  });

  it('debugs the crate binary for a Rust file', () => {
    const files = {
      '/ws/Cargo.toml': '[package]\nname = "demo-app"\nversion = "0.1.0"\n[dependencies]\nname = "not-this"\n',
      '/ws/target/debug/demo-app': '',
    };
    const r = resolveConfiguration({}, editor(files, { path: '/ws/src/main.rs', languageId: 'rust' }));
    assert.ok('config' in r, JSON.stringify(r));
    assert.strictEqual(r.config.program, '/ws/target/debug/demo-app');
  });

  it('asks for cargo build when the Rust binary is not built', () => {
    const files = { '/ws/Cargo.toml': '[package]\nname = "demo"\n' };
    const r = resolveConfiguration({}, editor(files, { path: '/ws/src/main.rs', languageId: 'rust' }));
    assert.ok('error' in r);
    assert.match(r.error, /cargo build/);
  });

  it('needs an open source file', () => {
    const r = resolveConfiguration({}, editor({}));
    assert.ok('error' in r);
  });
});

describe('launch.json configurations', () => {
  it('fills kernel defaults and keeps what the user set', () => {
    const r = resolveConfiguration({ type: 'vmdbg', request: 'launch', name: 'k', kernel: '/k.elf', mem: '256M' }, editor({}));
    assert.ok('config' in r);
    assert.strictEqual(r.config.mem, '256M');
    assert.strictEqual(r.config.cpus, 1);
    assert.strictEqual(r.config.stopOnEntry, false);
  });

  it('leaves a Linux kernel\'s memory to vmdbg', () => {
    const r = resolveConfiguration({ type: 'vmdbg', request: 'launch', name: 'Linux', kernel: 'default', run: ['cat /etc/hostname'] }, editor({}));
    assert.ok('config' in r);
    assert.strictEqual(r.config.mem, undefined);
    assert.deepStrictEqual(r.config.run, ['cat /etc/hostname']);
    const bare = resolveConfiguration({ type: 'vmdbg', request: 'launch', name: 'k', kernel: '/k.elf' }, editor({}));
    assert.ok('config' in bare);
    assert.strictEqual(bare.config.mem, '128M');
  });

  it('rejects an attach without gdbServer', () => {
    const r = resolveConfiguration({ type: 'vmdbg', request: 'attach', name: 'a' }, editor({}));
    assert.ok('error' in r);
    assert.match(r.error, /gdbServer/);
  });

  it('rejects a launch with neither program nor kernel', () => {
    const r = resolveConfiguration({ type: 'vmdbg', request: 'launch', name: 'x' }, editor({}));
    assert.ok('error' in r);
    assert.match(r.error, /"program".*"kernel"/);
  });

  it('reads the package name only from [package]', () => {
    assert.strictEqual(cargoPackageName('[workspace]\nname = "w"\n[package]\nname = "p"\n'), 'p');
    assert.strictEqual(cargoPackageName('[workspace]\nmembers = []\n'), undefined);
  });
});

describe('finding vmdbg', () => {
  const lookup = (setting: string, executables: string[]) => ({
    setting,
    extensionPath: '/ext',
    pathEnv: '/usr/local/bin:/usr/bin',
    isExecutable: (p: string) => executables.includes(p),
  });

  it('prefers the setting, then the bundled binary, then PATH', () => {
    assert.deepStrictEqual(findVmdbg(lookup('/opt/vmdbg', ['/opt/vmdbg', '/ext/bin/vmdbg'])), { path: '/opt/vmdbg', from: 'setting' });
    assert.deepStrictEqual(findVmdbg(lookup('', ['/ext/bin/vmdbg', '/usr/bin/vmdbg'])), { path: '/ext/bin/vmdbg', from: 'bundled' });
    assert.deepStrictEqual(findVmdbg(lookup('', ['/usr/bin/vmdbg'])), { path: '/usr/bin/vmdbg', from: 'PATH' });
  });

  it('names the fix when nothing is found or the setting is wrong', () => {
    const missing = findVmdbg(lookup('', []));
    assert.ok('error' in missing && /vmdbg\.path/.test(missing.error));
    const wrong = findVmdbg(lookup('/nope', []));
    assert.ok('error' in wrong && /\/nope/.test(wrong.error));
  });

  it('parses versions and refuses old ones', () => {
    assert.deepStrictEqual(parseVersion('vmdbg 0.1.0\n'), [0, 1, 0]);
    assert.strictEqual(parseVersion('garbage'), undefined);
    assert.strictEqual(isTooOld([0, 0, 9]), true);
    assert.strictEqual(isTooOld([0, 1, 0]), false);
    assert.strictEqual(isTooOld([1, 0, 0]), false);
  });
});

describe('package.json contributions', () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
  const dbg = pkg.contributes.debuggers[0];

  it('starts launch.json with the configuration the provider offers', () => {
    assert.deepStrictEqual(dbg.initialConfigurations, initialConfigurations);
  });

  it('offers the five snippets (the Linux kernel before a bare-metal one) and breakpoints in C, C++, Rust and asm', () => {
    const labels = dbg.configurationSnippets.map((s: { label: string }) => s.label);
    assert.deepStrictEqual(labels, [
      'vmdbg: Debug program in VM',
      'vmdbg: Debug the Linux kernel',
      'vmdbg: Debug guest kernel',
      'vmdbg: Record a kernel and rewind from its crash',
      'vmdbg: Attach to gdb server',
    ]);
    const langs = pkg.contributes.breakpoints.map((b: { language: string }) => b.language);
    for (const l of ['c', 'cpp', 'rust', 'asm']) assert.ok(langs.includes(l), l);
  });

  it('validates launch.json with the DAP server\'s own schema', () => {
    const schema = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', '..', 'dap-server', 'schema', 'launch.schema.json'), 'utf8'));
    const launch = schema.launch ?? schema.definitions?.launch ?? schema.$defs?.launch;
    assert.deepStrictEqual(dbg.configurationAttributes.launch, launch);
    for (const key of ['kernel', 'stopOnEntry', 'record', 'recordLimit']) {
      assert.ok(key in dbg.configurationAttributes.launch.properties, key);
    }
    assert.ok('gdbServer' in dbg.configurationAttributes.attach.properties);
  });

  it('documents record as a kernel-mode switch the record snippet uses', () => {
    const props = dbg.configurationAttributes.launch.properties;
    assert.strictEqual(props.record.type, 'boolean');
    assert.match(props.record.description, /^Kernel mode: .*Step Back/);
    assert.strictEqual(props.recordLimit.minimum, 1);
    const snippet = dbg.configurationSnippets.find((s: { label: string }) => /Record/.test(s.label));
    assert.strictEqual(snippet.body.record, true);
    // No engine: `auto` records a kernel alone on vmdbg-vmm, a Linux guest
    // on QEMU, and the description says which engine offers what.
    assert.ok(!('engine' in snippet.body), JSON.stringify(snippet.body));
    assert.match(props.record.description, /vmdbg-vmm/);
    assert.match(props.record.description, /QEMU/);
  });
});
