import * as assert from 'assert';
import Ajv from 'ajv';
import { readFileSync } from 'fs';
import { join } from 'path';

import { Example, expandSnippet, expandSnippetText, launchExamples, manifest, repoDir } from './launchExamples';

/** The DAP server's schema compiled by ajv: strict (a keyword it does not know is an error, not ignored), except for `required` in a `not`/`anyOf` branch without its own `properties`, the usual way to say "none of these". */
function validators() {
  const schema = JSON.parse(readFileSync(join(repoDir, 'dap-server', 'schema', 'launch.schema.json'), 'utf8'));
  const ajv = new Ajv({ strict: true, strictRequired: false, allErrors: true });
  ajv.addSchema(schema);
  const get = (request: string) => {
    const v = ajv.getSchema(`${schema.$id}#/definitions/${request}`);
    assert.ok(v, `no definitions/${request} in the schema`);
    return v;
  };
  return { launch: get('launch'), attach: get('attach') };
}

function problems(v: ReturnType<typeof validators>, e: Example): string | undefined {
  const check = e.config.request === 'attach' ? v.attach : e.config.request === 'launch' ? v.launch : undefined;
  if (!check) return `request ${JSON.stringify(e.config.request)}`;
  return check(e.config) ? undefined : JSON.stringify(check.errors);
}

describe('launch configurations handed to users, validated by ajv against the DAP server\'s schema', () => {
  const examples = launchExamples();

  it('finds the snippets, the initial configuration and the READMEs\' examples', () => {
    const where = examples.map((e) => e.where);
    assert.strictEqual(where.filter((w) => w.startsWith('snippet ')).length, 5, where.join('\n'));
    assert.strictEqual(where.filter((w) => w.startsWith('initialConfigurations')).length, 1, where.join('\n'));
    // docs/: the Linux kernel, QEMU, kernel/attach, record and launch.json blocks.
    assert.ok(where.filter((w) => w.startsWith('docs/')).length >= 5, where.join('\n'));
  });

  it('expands snippets as VS Code inserts them', () => {
    assert.strictEqual(expandSnippetText('${1:cat /etc/hostname}'), 'cat /etc/hostname');
    assert.strictEqual(expandSnippetText('"\\${workspaceFolder}/${1:a.out}"'), '"${workspaceFolder}/a.out"');
    assert.strictEqual(expandSnippetText('${1|qemu,kvm|}-$2-${3}'), 'qemu--');
    // VS Code inserts an unknown variable's name: an unescaped ${workspaceFolder} is lost.
    assert.strictEqual(expandSnippetText('${workspaceFolder}/x'), 'workspaceFolder/x');
    assert.deepStrictEqual(expandSnippet({ program: '^"\\${workspaceFolder}/${1:a.out}"', args: [], n: 3 }), {
      program: '${workspaceFolder}/a.out',
      args: [],
      n: 3,
    });
  });

  it('the schema accepts every one of them', () => {
    const v = validators();
    const refused = examples.map((e) => [e.where, problems(v, e)]).filter(([, p]) => p);
    assert.deepStrictEqual(refused, []);
  });

  it('keeps ${workspaceFolder} in file snippets (VS Code would insert "workspaceFolder" without the escape)', () => {
    for (const e of examples.filter((x) => x.where.startsWith('snippet '))) {
      for (const key of ['program', 'kernel', 'symbols']) {
        const value = e.config[key];
        if (typeof value === 'string' && value !== 'default') assert.match(value, /^\$\{workspaceFolder\}\//, `${e.where}.${key}`);
      }
    }
  });

  // The schema's patterns, minimums, enums and oneOf evaluated by a real
  // validator: a change to one that refuses what users are shown, or a
  // broken one that accepts anything, fails here.
  it('evaluates the schema\'s patterns, minimum, enum and oneOf', () => {
    const v = validators();
    const launch = (extra: Record<string, unknown>) => v.launch({ kernel: '/k.elf', ...extra });
    assert.ok(launch({ mem: '512M' }) && launch({ mem: '1024' }));
    for (const mem of ['lots', '512MB', '', '1.5G']) assert.ok(!launch({ mem }), `mem ${mem}`);
    assert.ok(!launch({ cpus: 0 }));
    assert.ok(!launch({ engine: 'no-such-engine' }));
    assert.ok(!v.launch({ program: '/a', kernel: '/k' }), 'program and kernel together');
    assert.ok(!v.launch({ program: '/a', mem: '1G' }), 'a kernel property in program mode');
    assert.ok(!v.launch({ cwd: '/' }), 'neither program nor kernel');
    const attach = (gdbServer: string) => v.attach({ gdbServer, symbols: '/k.elf' });
    for (const ok of ['localhost:1234', '127.0.0.1:1234', ':1234', 'unix:/tmp/gdb.sock']) assert.ok(attach(ok), ok);
    for (const bad of ['localhost', 'localhost:', 'localhost:12a', 'unix:', '::1:1234']) assert.ok(!attach(bad), bad);
    assert.ok(!v.attach({ gdbServer: 'localhost:1234' }), 'symbols is required');
  });

  // The DAP server's test holds its parser to these same good/bad values
  // (arguments.rs PATTERN_EXAMPLES); here the schema's regexes judge them.
  it('the schema\'s patterns take and refuse the DAP server\'s pattern examples as its parser does', () => {
    const v = validators();
    const rust = readFileSync(join(repoDir, 'dap-server', 'src', 'dap', 'arguments.rs'), 'utf8');
    const table = /const PATTERN_EXAMPLES[^=]*= &\[([\s\S]*?)\];/.exec(rust)?.[1];
    assert.ok(table, 'no PATTERN_EXAMPLES in arguments.rs');
    const rows = [...table.matchAll(/\("(\w+)", "([^"]*)", "([^"]*)"\)/g)].map((m) => m.slice(1));
    assert.ok(rows.length >= 2, table);
    for (const [name, good, bad] of rows) {
      const [check, base] =
        name === 'gdbServer' ? [v.attach, { symbols: '/k.elf' }] : [v.launch, { kernel: '/k.elf' }];
      assert.ok(check({ ...base, [name]: good }), `${name}: the schema refuses ${good}: ${JSON.stringify(check.errors)}`);
      assert.ok(!check({ ...base, [name]: bad }), `${name}: the schema accepts ${bad}`);
    }
  });

  it('package.json carries the schema\'s definitions unchanged (npm run sync-schema)', () => {
    const schema = JSON.parse(readFileSync(join(repoDir, 'dap-server', 'schema', 'launch.schema.json'), 'utf8'));
    const dbg = manifest().contributes.debuggers.find((d) => d.type === 'vmdbg') as { configurationAttributes: unknown };
    assert.deepStrictEqual(dbg.configurationAttributes, { launch: schema.definitions.launch, attach: schema.definitions.attach });
  });
});
