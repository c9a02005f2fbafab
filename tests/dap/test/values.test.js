// Values as Rust and C++ developers expect them (issue 15), end to end: a
// real DAP client drives `vmdbg dap` on a Rust and a C++ program in a
// Linux VM (the QEMU engine here; the KVM engine in the nested tier, where
// tests/tests/nested_linux.rs runs this suite against `vmdbg dap` in its L1
// with VMDBG_DAP_PORT, VMDBG_TEST_PROGRAMS and VMDBG_TEST_ENGINE=kvm) and compares what the Variables view
// would show with the reference debuggers on the same binary at the same
// line, run on this host: rust-gdb's pretty printers for Rust, gdb's
// libstdc++ printers for C++. Addresses are masked (the guest's heap is
// not the host's); rust-gdb's notation is translated into CodeLLDB's
// (`(3) vec![…]`, `Some(5)` without the path) by `fromRustGdb`, which is
// the only place the two notations differ.
'use strict';
const assert = require('assert');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { vmdbg, haveCommand, requireTier, startClient, lineOf } = require('./helpers');
const { sources: { valuesRs, valuesCpp }, buildValuesPrograms } = require('../programs');

// In the nested tier the programs are prebuilt where L1 sees them at the
// same path, and the reference debuggers run here on those same binaries.
const prebuilt = process.env.VMDBG_TEST_PROGRAMS;
const engine = process.env.VMDBG_TEST_ENGINE || 'qemu';
const BOOT_MS = 240000;

function tierMissing() {
  const tools = ['rust-gdb', 'gdb'];
  if (!prebuilt) {
    if (!fs.existsSync(vmdbg)) return `${vmdbg} is not built (cargo build --release -p vmdbg)`;
    tools.push('g++', 'rustc', 'qemu-system-x86_64');
  }
  for (const tool of tools) {
    if (!haveCommand(tool)) return `\`${tool}\` is not installed (see .ci/setup-tests)`;
  }
  return null;
}

function run(cmd, args) {
  const r = cp.spawnSync(cmd, args, { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/**
 * `info locals` of a reference gdb stopped at `file:line`, by name;
 * `elements` is how many a sequence shows (vmdbg's summaries show 10).
 * `prints` are gdb commands (`p/x v`) whose values come back, in order,
 * as `printed`.
 */
function referenceLocals(gdb, binary, file, line, elements = 200, prints = []) {
  const out = run(gdb, ['-batch', '-nx', '-ex', 'set startup-with-shell off', '-ex', `set print elements ${elements}`,
    '-ex', `break ${path.basename(file)}:${line}`, '-ex', 'run', '-ex', 'info locals',
    ...prints.flatMap((p) => ['-ex', p]), binary]);
  const locals = {};
  const printed = [];
  const after = out.slice(out.indexOf(`${line}\t`));
  for (const l of after.split('\n')) {
    const m = /^([A-Za-z_]\w*) = (.*)$/.exec(l);
    if (m && !(m[1] in locals)) locals[m[1]] = m[2];
    const p = /^\$(\d+) = (.*)$/.exec(l);
    if (p) printed[Number(p[1]) - 1] = p[2];
  }
  Object.defineProperty(locals, 'printed', { value: printed, enumerable: false });
  return locals;
}

/**
 * The reference debugger's `bt` after each of `moves` (`run`, then
 * `continue` to the next breakpoint, or `step`) in one run with
 * breakpoints on `locations` (`values::total`, `values.rs:76`): per stop,
 * its frames down to the C `main` (gdb's own `backtrace past-main off`
 * ends C++ stacks there; the frames past it are the guest's libc, not the
 * host's), each as { name, file, line }.
 */
function referenceBacktraces(gdb, binary, locations, moves = ['run', 'continue']) {
  const out = run(gdb, ['-batch', '-nx', '-ex', 'set startup-with-shell off', '-ex', 'set width 0',
    ...locations.flatMap((l) => ['-ex', `break ${l}`]),
    ...moves.flatMap((m) => ['-ex', m, '-ex', 'echo @@BT\\n', '-ex', 'bt']), binary]);
  return out.split('@@BT\n').slice(1).map((bt) => {
    const frames = [];
    for (const l of bt.split('\n')) {
      const m = /^#\d+\s+(?:0x[0-9a-f]+ in )?(.*)$/.exec(l);
      if (!m) continue;
      const at = / at (\S+):(\d+)$/.exec(m[1]);
      frames.push({ name: functionName(m[1]), file: at ? path.basename(at[1]) : null, line: at ? Number(at[2]) : null });
      if (frames[frames.length - 1].name === 'main') break;
    }
    return frames;
  });
}

/** The function in a gdb frame line (`name<generics> (args) at …`). */
function functionName(frameLine) {
  let depth = 0;
  for (let i = 0; i < frameLine.length; i++) {
    const c = frameLine[i];
    if (c === '<') depth++;
    else if (c === '>') depth--;
    else if (c === ' ' && depth === 0 && frameLine[i + 1] === '(') return frameLine.slice(0, i);
  }
  return frameLine;
}

/**
 * A function's name in a form both notations share: generic arguments
 * dropped (gdb's `f<T>`, the demangler's `f::<T>`), closures as
 * `{closure}` (gdb's `{closure#0}`, legacy mangling's `{{closure}}`), and
 * a trait method by its own name alone (gdb names it by the impl block,
 * `core::ops::function::impls::{impl#2}::call_once`, the demangler by the
 * trait, `<&F as core::ops::function::FnOnce<A>>::call_once`).
 */
function comparableName(name) {
  let plain = '';
  let depth = 0;
  for (const c of name.replace(/ \[inlined\]$/, '')) {
    if (c === '<') depth++;
    if (depth === 0) plain += c;
    if (c === '>') depth--;
  }
  plain = plain.replace(/::$/, '').replace(/::(?=::|$)/g, '').replace(/\{\{closure\}\}|\{closure#\d+\}/g, '{closure}');
  return /\{impl#\d+\}/.test(plain) || /^</.test(name) ? plain.split('::').pop() : plain;
}

/** vmdbg's stack at a stop is gdb's `bt` there: the same frames, inlined calls included, at the same lines. */
async function expectFramesAsGdb(dc, threadId, reference, what) {
  const frames = (await dc.stackTraceRequest({ threadId })).body.stackFrames;
  const main = frames.findIndex((f) => f.name === 'main');
  const shown = (main < 0 ? frames : frames.slice(0, main + 1))
    .map((f) => `${comparableName(f.name)} ${f.source ? path.basename(f.source.path) : null}:${f.source ? f.line : null}`);
  const expected = reference.map((f) => `${comparableName(f.name)} ${f.file}:${f.line}`);
  assert.deepStrictEqual(shown, expected, `${what}: the stack as gdb's bt shows it`);
  return frames;
}

/**
 * Every row under `variable`, `levels` deep (the first `count` of each):
 * a row with an `evaluateName` evaluates to the value the row shows
 * (VS Code's "Copy as Expression", pasted into the debug console). Returns
 * the rows that have none.
 */
async function checkEvaluateNames(dc, frameId, variable, levels, count = 6) {
  const missing = [];
  if (!variable.variablesReference || levels === 0) return missing;
  for (const row of await children(dc, variable, 0, count)) {
    if (row.evaluateName === undefined) {
      missing.push(`${variable.evaluateName} > ${row.name}`);
    } else {
      assert.strictEqual(await evaluate(dc, frameId, row.evaluateName), row.value, `${row.evaluateName} (the row ${row.name} under ${variable.evaluateName})`);
    }
    missing.push(...await checkEvaluateNames(dc, frameId, row, levels - 1, count));
  }
  return missing;
}

/** Each [expression, value] of `table` evaluates to its value. */
async function expectEvaluations(dc, frameId, table) {
  for (const [expression, value] of table) assert.strictEqual(await evaluate(dc, frameId, expression), value, expression);
}

/** Runs the program to its end; returns what it printed meanwhile. */
async function continueToExit(dc, threadId) {
  const stdout = [];
  dc.on('output', (e) => { if (e.body.category === 'stdout') stdout.push(e.body.output); });
  const exited = dc.waitForEvent('exited', BOOT_MS);
  await dc.continueRequest({ threadId });
  await exited;
  return stdout.join('');
}

/** setVariable on the row `name` under `parent`; returns the shown value. */
async function setRow(dc, parent, name, value) {
  return (await dc.setVariableRequest({ variablesReference: parent.variablesReference, name, value })).body.value;
}

/** The locals of values.rs compared with rust-gdb at MARK:values. */
const RUST_LOCALS = ['acct', 'shapes', 'nothing', 'maybe_ref', 'no_ref', 'shared', 'shared2', 'atomic', 'letter',
  'pair', 'slice', 'words', 'res', 'ok', 'big', 't', 'boxed', 'map', 'set', 'counter', 'cell', 'ring', 'squares',
  'small', 'letters', 'path', 'os', 'offset', 'add', 'flag', 'point', 'trio', 'nonzero', 'no_nonzero', 'maybe_box', 'no_box'];

const maskAddresses = (s) => s.replace(/0x[0-9a-f]+/g, '0xADDR');

/** `a, "b, c", [d, e]` split at its top-level commas. */
function splitTop(body) {
  const items = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if ('([{'.includes(c)) {
      depth++;
    } else if (')]}'.includes(c)) {
      depth--;
    } else if (c === ',' && depth === 0 && body[i + 1] === ' ') {
      items.push(body.slice(start, i));
      start = i + 2;
    }
  }
  if (body.length) items.push(body.slice(start));
  return items;
}

/**
 * A hash container's one-line value in either notation — Rust's `(48)
 * {"k": 1, …}`, gdb's `std::unordered_map with 48 elements = {[4] = 16...}`
 * — as its head (the count), its entries and whether it ends in an
 * ellipsis.
 */
function hashedParts(text) {
  const m = /^(\(\d+\)) \{(.*)\}$/.exec(text) || /^(std::unordered_\w+ with \d+ elements?) = \{(.*)\}$/.exec(text);
  assert.ok(m, `a hash container's value: ${text}`);
  const items = splitTop(m[2]);
  let more = false;
  if (items.length && items[items.length - 1] === '…') {
    items.pop();
    more = true;
  } else if (items.length && items[items.length - 1].endsWith('...')) {
    items[items.length - 1] = items[items.length - 1].slice(0, -3);
    more = true;
  }
  return { head: m[1], count: Number(/\d+/.exec(m[1])[0]), items, more };
}

/**
 * vmdbg's hash container `variable` against the reference debugger's full
 * print of it (`reference`, in vmdbg's notation), order-independently:
 * the summary has the same count and shows the first ten entries it
 * walks, each one of the reference's; the rows, sorted, are the
 * reference's entries, sorted — every entry, however many groups of
 * buckets the table spans. `entryOf` turns a row into the notation of an
 * entry (`["k"]=1` -> `"k": 1`).
 */
async function expectHashedAsReference(dc, variable, reference, entryOf, what) {
  const expected = hashedParts(reference);
  assert.ok(!expected.more && expected.items.length === expected.count, `${what}: the reference is printed in full: ${reference}`);
  assert.ok(expected.count > 16, `${what}: more entries than one group of hashbrown's control bytes covers: ${reference}`);
  const shown = hashedParts(variable.value);
  assert.strictEqual(shown.head, expected.head, `${what}: ${variable.value} against ${reference}`);
  assert.strictEqual(shown.items.length, Math.min(10, expected.count), `${what}: the summary shows ten entries: ${variable.value}`);
  assert.strictEqual(shown.more, expected.count > 10, `${what}: ${variable.value}`);
  assert.strictEqual(new Set(shown.items).size, shown.items.length, `${what}: no entry twice in ${variable.value}`);
  for (const item of shown.items) assert.ok(expected.items.includes(item), `${what}: ${item} of ${variable.value} is not in the reference ${reference}`);
  const rows = (await dc.variablesRequest({ variablesReference: variable.variablesReference })).body.variables;
  assert.deepStrictEqual(rows.map((r) => entryOf(r)).sort(), [...expected.items].sort(), `${what}: every entry is a row`);
}

/**
 * The locals that are hash containers, each with how one of its rows reads
 * as an entry of its summary: a Rust map's (`["k"]` = 1) as `"k": 1`, a
 * Rust set's (`[0]` = 42) as its key, a C++ map's as gdb prints the entry,
 * `[4] = 16`. Their order is the table's, which for Rust depends on the
 * process's hash seed (RandomState) and so differs from the reference
 * debugger's run to vmdbg's: they are compared as sets.
 */
const RUST_HASHED = {
  map: (row) => `${row.name.slice(1, -1)}: ${row.value}`,
  set: (row) => row.value,
};
const CPP_HASHED = { squares: (row) => `${row.name} = ${row.value}` };

/** rust-gdb's notation in CodeLLDB's, which vmdbg follows. */
function fromRustGdb(text) {
  let s = text;
  // Rc(strong=2, weak=0) = {value = "rc", strong = 2, weak = 0} -> Rc(strong=2, weak=0) "rc"
  s = s.replace(/((?:Rc|Arc)\(strong=\d+, weak=\d+\)) = \{value = (.*?), strong = \d+, weak = \d+\}/g, '$1 $2');
  // Vec(size=3) = {a, b} -> (3) vec![a, b]; &[T](size=2) = {a} -> (2) [a]
  s = s.replace(/Vec\(size=(\d+)\) = \{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}/g, (_, n, items) => `(${n}) vec![${items.replace(/\.\.\.$/, ', …')}]`);
  s = s.replace(/&\[[^\]]*\]\(size=(\d+)\) = \{([^{}]*)\}/g, '($1) [$2]');
  // VecDeque(size=4) = {3, 4} -> (4) VecDeque[3, 4]
  s = s.replace(/VecDeque\(size=(\d+)\) = \{(.*)\}/, (_, n, items) => `(${n}) VecDeque[${items.replace(/\.\.\.$/, ', …')}]`);
  // HashMap(size=1) = {["k"] = 1} -> (1) {"k": 1}; HashSet(size=1) = {42} -> (1) {42}; BTreeMap, BTreeSet alike
  s = s.replace(/(?:Hash|BTree)Map\(size=(\d+)\) = \{(.*)\}/, (_, n, body) => `(${n}) {${body.replace(/\[([^\]]*)\] = /g, '$1: ').replace(/\.\.\.$/, ', …')}}`);
  s = s.replace(/(?:Hash|BTree)Set\(size=(\d+)\) = /, '($1) ');
  // std::path::PathBuf {inner: "/tmp/x"} -> "/tmp/x"
  s = s.replace(/^(?:[a-z_]\w*::)+PathBuf \{inner: (.*)\}$/, '$1');
  // values::main::{closure_env#1} {offset: 10} -> {offset: 10}
  s = s.replace(/(?:[a-z_]\w*::)+\{closure_env#\d+\} \{/g, '{');
  // Cell = {value = 3} -> 3; RefCell(borrow=0) = {value = X, borrow = 0} -> X
  s = s.replace(/^Cell = \{value = (.*)\}$/, '$1');
  s = s.replace(/^RefCell\(borrow=-?\d+\) = \{value = (.*), borrow = -?\d+\}$/, '$1');
  // core::option::Option<u32>::Some(5), values::Shape::Rect(2, 3) -> Some(5), Rect(2, 3)
  s = s.replace(/(?:[a-z_]\w*::)+(?:[A-Z]\w*(?:<(?:[^<>]|<[^<>]*>)*>)?::)([A-Z]\w*)/g, '$1');
  // values::Account {name: …} -> {name: …}
  s = s.replace(/(?:[a-z_]\w*::)+[A-Z]\w* \{/g, '{');
  // 955 '\u{0003bb}' -> 'λ', 99 'c' -> 'c'
  s = s.replace(/\b\d+ '\\u\{([0-9a-f]+)\}'/g, (_, hex) => `'${String.fromCodePoint(parseInt(hex, 16))}'`);
  s = s.replace(/\b\d+ '([^'\\])'/g, "'$1'");
  return s;
}

async function launchTo(dc, program, source, lines, functions) {
  const stopped = dc.waitForEvent('stopped', BOOT_MS);
  await dc.initializeRequest({ adapterID: 'vmdbg', supportsVariablePaging: true });
  const initialized = dc.waitForEvent('initialized', BOOT_MS);
  const launched = dc.launchRequest({ engine, program });
  await Promise.race([initialized, launched.then(() => initialized)]);
  const bps = await dc.setBreakpointsRequest({ source: { path: source }, breakpoints: lines.map((line) => ({ line })) });
  const fbps = await dc.setFunctionBreakpointsRequest({ breakpoints: functions.map((name) => ({ name })) });
  await dc.configurationDoneRequest();
  await launched;
  const event = await stopped;
  // The adapter's own word on which engine booted the VM, so a run meant
  // for the KVM engine cannot pass on another.
  assert.ok(dc.console.includes(`vmdbg: engine ${engine} `), `not booted on the ${engine} engine; the console said:\n${dc.console}`);
  return { event, bps, fbps };
}

async function continueTo(dc, threadId) {
  const stopped = dc.waitForEvent('stopped', BOOT_MS);
  await dc.continueRequest({ threadId });
  return stopped;
}

async function locals(dc, threadId) {
  const trace = await dc.stackTraceRequest({ threadId });
  const frame = trace.body.stackFrames[0];
  const scopes = await dc.scopesRequest({ frameId: frame.id });
  const ref = scopes.body.scopes.find((s) => s.name === 'Locals').variablesReference;
  const vars = (await dc.variablesRequest({ variablesReference: ref })).body.variables;
  return { frame, frames: trace.body.stackFrames, vars: Object.fromEntries(vars.map((v) => [v.name, v])) };
}

const children = async (dc, variable, start, count) =>
  (await dc.variablesRequest({ variablesReference: variable.variablesReference, start, count })).body.variables;

const evaluate = async (dc, frameId, expression, format) =>
  (await dc.evaluateRequest({ expression, frameId, context: 'watch', format })).body.result;

describe(`values as Rust and C++ show them (${engine} engine)`, function () {
  this.timeout(BOOT_MS + 60000);
  let work;
  let dc;

  before(function () {
    requireTier(this, tierMissing());
    if (prebuilt) {
      work = prebuilt;
    } else {
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-dap-values-'));
      buildValuesPrograms(work);
    }
  });

  beforeEach(async function () {
    dc = await startClient();
  });

  afterEach(async function () {
    if (dc) await dc.stop().catch(() => {});
    dc = null;
  });

  after(function () {
    if (work && !prebuilt) fs.rmSync(work, { recursive: true, force: true });
  });

  it('Rust: demangled frames, a function breakpoint by path, and locals as rust-gdb shows them', async function () {
    const line = lineOf(valuesRs, /MARK:values/);
    const reference = referenceLocals('rust-gdb', path.join(work, 'values'), valuesRs, line, 10, ['p/x acct', 'p/x t', 'p/x trio']);
    assert.ok(Object.keys(reference).length >= 15, `rust-gdb gave the reference: ${JSON.stringify(reference)}`);
    // rust-gdb counts a map entry as two elements: 20 shows ten entries, as vmdbg does.
    reference.squares = referenceLocals('rust-gdb', path.join(work, 'values'), valuesRs, line, 20).squares;
    // The hash containers in full, to compare as sets.
    const full = referenceLocals('rust-gdb', path.join(work, 'values'), valuesRs, line, 'unlimited');
    const backtraces = referenceBacktraces('rust-gdb', path.join(work, 'values'), ['values::total', `values.rs:${line}`]);

    const { event, fbps } = await launchTo(dc, path.join(work, 'values'), valuesRs, [line], ['values::total']);
    assert.strictEqual(fbps.body.breakpoints[0].verified, true, JSON.stringify(fbps.body));
    await expectFramesAsGdb(dc, event.body.threadId, backtraces[0], 'at the function breakpoint values::total');
    // The function breakpoint by its Rust path stops first, in a frame
    // named as Rust writes it, called from the demangled main.
    let { frames, vars } = await locals(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'values::total');
    assert.strictEqual(frames[1].name, 'values::main');
    assert.strictEqual(frames[0].line, lineOf(valuesRs, /let sum: i64/));
    const args = await dc.scopesRequest({ frameId: frames[0].id });
    const argRef = args.body.scopes.find((s) => s.name === 'Arguments').variablesReference;
    const argVars = Object.fromEntries((await dc.variablesRequest({ variablesReference: argRef })).body.variables.map((v) => [v.name, v]));
    assert.strictEqual(argVars.label.value, '"sum"');
    assert.strictEqual(await evaluate(dc, frames[0].id, 'acct.name'), '"alice"', 'field access through a reference');

    const stop = await continueTo(dc, event.body.threadId);
    await expectFramesAsGdb(dc, stop.body.threadId, backtraces[1], `at the breakpoint on values.rs:${line}`);
    ({ frames, vars } = await locals(dc, stop.body.threadId));
    assert.strictEqual(frames[0].line, line);
    for (const name of RUST_LOCALS) {
      assert.ok(vars[name], `vmdbg shows the local ${name}`);
      assert.ok(reference[name], `rust-gdb shows the local ${name}`);
      if (RUST_HASHED[name]) {
        await expectHashedAsReference(dc, vars[name], fromRustGdb(full[name]), RUST_HASHED[name], name);
        continue;
      }
      assert.strictEqual(maskAddresses(vars[name].value), maskAddresses(fromRustGdb(reference[name])), `${name}: rust-gdb says ${reference[name]}`);
    }

    // Children: a struct's fields, an enum's payload, a Vec's elements.
    const acct = await children(dc, vars.acct);
    assert.deepStrictEqual(acct.map((c) => `${c.name}=${c.value}`), ['name="alice"', 'history=(3) vec![100, -30, 45]', 'limit=Some(500)']);
    const limit = await children(dc, acct[2]);
    assert.deepStrictEqual(limit.map((c) => `${c.name}=${c.value}`), ['0=500']);
    assert.strictEqual(vars.shapes.indexedVariables, 3);
    const shapes = await children(dc, vars.shapes);
    assert.deepStrictEqual(shapes.map((c) => `${c.name}=${c.value}`), ['[0]=Circle{r: 1.5}', '[1]=Rect(2, 3)', '[2]=Empty']);
    const rect = await children(dc, shapes[1]);
    assert.deepStrictEqual(rect.map((c) => `${c.name}=${c.value}`), ['0=2', '1=3']);
    const err = await children(dc, vars.res);
    assert.deepStrictEqual(err.map((c) => `${c.name}=${c.value}`), ['0="bad"']);
    assert.strictEqual(vars.nothing.variablesReference, 0, 'None has nothing to expand');
    const shared = await children(dc, vars.shared);
    assert.deepStrictEqual(shared.map((c) => `${c.name}=${c.value}`), ['value="rc"']);

    // A VecDeque that wrapped around its buffer, in queue order; a B-tree
    // whose root is an internal node, in key order.
    assert.strictEqual(vars.ring.indexedVariables, 4);
    const ring = await children(dc, vars.ring);
    assert.deepStrictEqual(ring.map((c) => `${c.name}=${c.value}`), ['[0]=3', '[1]=4', '[2]=5', '[3]=6']);
    const squares = await children(dc, vars.squares);
    assert.deepStrictEqual(squares.map((c) => `${c.name}=${c.value}`), [...Array(20).keys()].map((i) => `[${i}]=${i * i}`));
    const letters = await children(dc, vars.letters);
    assert.deepStrictEqual(letters.map((c) => `${c.name}=${c.value}`), ["[0]='a'", "[1]='b'", "[2]='c'"]);
    const trio = await children(dc, vars.trio);
    assert.deepStrictEqual(trio.map((c) => `${c.name}=${c.value}`), ['0=1', "1='c'", '2=(2.5, "s")']);

    // A million-element Vec is paged: the last page holds the last elements.
    assert.strictEqual(vars.big.indexedVariables, 1000000);
    const tail = await children(dc, vars.big, 999998, 2);
    assert.deepStrictEqual(tail.map((c) => `${c.name}=${c.value}`), ['[999998]=999998', '[999999]=999999']);

    // evaluate with Rust's own forms.
    const frameId = frames[0].id;
    assert.strictEqual(await evaluate(dc, frameId, 'acct.history[1]'), '-30');
    assert.strictEqual(await evaluate(dc, frameId, 'slice[0]'), '-30');
    assert.strictEqual(await evaluate(dc, frameId, 'pair.1'), '"two"');
    assert.strictEqual(await evaluate(dc, frameId, 'big[999999]'), '999999');
    await assert.rejects(evaluate(dc, frameId, 'acct.history[3]'), /out of range.*length 3/);
    // Rust's own forms through the library types: a VecDeque by queue
    // position (its last element wrapped to the buffer's start), a
    // BTreeMap by key, `*` on Box and Rc, fields through Box, tuple fields.
    await expectEvaluations(dc, frameId, [
      ['ring[0]', '3'],
      ['ring[3]', '6'],
      ['squares[7]', '49'],
      ['*boxed', '7'],
      ['*shared', '"rc"'],
      ['point.x', '1'],
      ['*maybe_ref.0', '7'],
      ['trio.2.1', '"s"'],
      ['cell[1]', '2'],
      ['map["k"]', '1'],
      ['map["k47"]', '146'],
      ['small["b"]', '2'],
      ['*maybe_box.0', '9'],
      ['nonzero.0', '8'],
    ]);
    await assert.rejects(evaluate(dc, frameId, 'ring[4]'), /out of range.*length 4/);
    await assert.rejects(evaluate(dc, frameId, 'acct.history.len()'), /`len\(…\)` needs a function call/);

    // Hex, as VS Code asks for it (format.hex), against rust-gdb's p/x.
    const [acctHex, tHex, trioHex] = reference.printed;
    assert.strictEqual(await evaluate(dc, frameId, 'acct', { hex: true }), fromRustGdb(acctHex));
    const hexLocals = (await dc.variablesRequest({ variablesReference: (await dc.scopesRequest({ frameId })).body.scopes[0].variablesReference, format: { hex: true } })).body.variables;
    assert.strictEqual(hexLocals.find((v) => v.name === 't').value, tHex);
    assert.strictEqual(hexLocals.find((v) => v.name === 'letter').value, "'λ'", 'a char stays a char');
    assert.ok(/^\(0x1, 0x63, \(0x4004000000000000, /.test(trioHex), `rust-gdb's p/x of a tuple: ${trioHex}`);
    assert.strictEqual(hexLocals.find((v) => v.name === 'trio').value, "(0x1, 'c', (2.5, \"s\"))", 'integers in hex; chars and floats as they are');
    const hexTrace = await dc.stackTraceRequest({ threadId: stop.body.threadId, format: { hex: true } });
    assert.strictEqual(hexTrace.body.stackFrames[0].name, 'values::main');

    // Copy as Expression: every row's evaluateName evaluates to the row.
    const missing = [];
    for (const name of ['acct', 'shapes', 'ring', 'squares', 'letters', 'point', 'trio', 'shared', 'cell', 'map', 'set', 'add', 'big', 'res']) {
      assert.strictEqual(vars[name].evaluateName, name);
      missing.push(...await checkEvaluateNames(dc, frameId, vars[name], 3));
    }
    assert.deepStrictEqual(missing, [], 'every row has an expression');

    // setVariable inside containers: a Vec element, fields through a Box.
    assert.strictEqual(await setRow(dc, acct[1], '[0]', '-7'), '-7');
    assert.strictEqual(await evaluate(dc, frameId, 'acct.history[0]'), '-7');
    const pointee = (await children(dc, vars.point))[0];
    assert.strictEqual(pointee.evaluateName, '*point');
    assert.strictEqual(await setRow(dc, pointee, 'x', '0x10'), '16');
    assert.strictEqual(await setRow(dc, pointee, 'visible', 'true'), 'true');
    assert.strictEqual(await evaluate(dc, frameId, 'point.visible'), 'true');
    assert.strictEqual(await setRow(dc, vars.ring, '[3]', '60'), '60');
    assert.strictEqual(await evaluate(dc, frameId, 'ring'), '(4) VecDeque[3, 4, 5, 60]');
    // The program itself reads what was set.
    assert.match(await continueToExit(dc, stop.body.threadId), /\[3, 4, 5, 60\] 20 .* 11 true 16 true /, 'the program printed what was set');
  });

  it('Rust release build with debuginfo: the locals rustc keeps show as rust-gdb shows them, the ones it optimised out say so', async function () {
    const line = lineOf(valuesRs, /MARK:values/);
    const binary = path.join(work, 'values_release');
    const reference = referenceLocals('rust-gdb', binary, valuesRs, line, 10);
    reference.squares = referenceLocals('rust-gdb', binary, valuesRs, line, 20).squares;
    const full = referenceLocals('rust-gdb', binary, valuesRs, line, 'unlimited');
    const backtraces = referenceBacktraces('rust-gdb', binary, ['values::total', `values.rs:${line}`], ['run', 'step', 'step', 'continue']);
    const { event, fbps } = await launchTo(dc, binary, valuesRs, [line], ['values::total']);
    assert.strictEqual(fbps.body.breakpoints[0].verified, true, JSON.stringify(fbps.body));
    // rustc inlined library code (the iterator's sum) at total's first
    // statement, and std's start-up code into its callers: as gdb, the
    // calls inlined at the stop's pc are not entered yet (the stop is in
    // total, at the call's line), and those further down are frames.
    let frames = await expectFramesAsGdb(dc, event.body.threadId, backtraces[0], 'at the function breakpoint values::total');
    assert.ok(backtraces[0].length > 4, `gdb's bt is the whole stack: ${JSON.stringify(backtraces[0])}`);
    assert.strictEqual(frames[0].name, 'values::total');
    assert.ok(frames.some((f) => f.name.endsWith(' [inlined]')), `frames inlined further down are shown as such: ${frames.map((f) => f.name).join(' < ')}`);
    const totalFrame = frames[0];
    const args = await dc.scopesRequest({ frameId: totalFrame.id });
    const argRef = args.body.scopes.find((s) => s.name === 'Arguments').variablesReference;
    const argVars = Object.fromEntries((await dc.variablesRequest({ variablesReference: argRef })).body.variables.map((v) => [v.name, v]));
    assert.strictEqual(argVars.label.value, '"sum"');
    // stepIn there goes down into those calls one at a time without
    // running, as gdb's `step` does: Iterator::sum, then the Sum impl.
    for (const [i, what] of [[1, 'first'], [2, 'second']]) {
      const stepped = dc.waitForEvent('stopped');
      await dc.stepInRequest({ threadId: event.body.threadId });
      assert.strictEqual((await stepped).body.reason, 'step');
      const inside = await expectFramesAsGdb(dc, event.body.threadId, backtraces[i], `after the ${what} stepIn`);
      assert.ok(inside[0].name.endsWith(' [inlined]'), inside[0].name);
      assert.strictEqual(inside[0].instructionPointerReference, totalFrame.instructionPointerReference, 'no instruction ran');
    }

    const stop = await continueTo(dc, event.body.threadId);
    await expectFramesAsGdb(dc, stop.body.threadId, backtraces[3], `at the breakpoint on values.rs:${line}`);
    let vars;
    ({ frames, vars } = await locals(dc, stop.body.threadId));
    assert.strictEqual(frames[0].line, line);
    const kept = [];
    const optimisedOut = [];
    for (const name of RUST_LOCALS) {
      // rust-gdb's printers report a value they cannot read on stderr: the
      // line keeps nothing after `=`, or a container's head without its
      // elements (`Vec(size=1000000)`).
      if (reference[name] === undefined || /optimized out/.test(reference[name]) || /^(\w+\(size=\d+\))?$/.test(reference[name])) {
        optimisedOut.push(name);
        continue;
      }
      assert.ok(vars[name], `vmdbg shows the local ${name} (rust-gdb: ${reference[name]})`);
      if (RUST_HASHED[name]) {
        await expectHashedAsReference(dc, vars[name], fromRustGdb(full[name]), RUST_HASHED[name], name);
        kept.push(name);
        continue;
      }
      assert.strictEqual(maskAddresses(vars[name].value), maskAddresses(fromRustGdb(reference[name])), `${name}: rust-gdb says ${reference[name]}`);
      kept.push(name);
    }
    console.log(`      release build: ${kept.length} locals compared; optimised out (rust-gdb): ${optimisedOut.join(', ') || 'none'}`);
    for (const name of optimisedOut) {
      if (vars[name]) assert.match(vars[name].value, /optimi[sz]ed out|not available|unavailable/, `${name}: rust-gdb says ${reference[name]}`);
    }
    assert.ok(kept.length >= 20, `most locals survive -C opt-level=3 (kept: ${kept.join(', ')})`);
  });

  it('C++: demangled method frames, a breakpoint on ns::Class::method, and locals as gdb\'s libstdc++ printers show them', async function () {
    const line = lineOf(valuesCpp, /MARK:values/);
    const reference = referenceLocals('gdb', path.join(work, 'values_cpp'), valuesCpp, line, 200, ['p/x numbers', 'p/x basket', 'p/x fixed']);
    assert.ok(Object.keys(reference).length >= 13, `gdb gave the reference: ${JSON.stringify(reference)}`);
    const backtraces = referenceBacktraces('gdb', path.join(work, 'values_cpp'), ['shop::Basket::total', `values.cpp:${line}`]);

    const { event, fbps } = await launchTo(dc, path.join(work, 'values_cpp'), valuesCpp, [line], ['shop::Basket::total']);
    assert.strictEqual(fbps.body.breakpoints[0].verified, true, JSON.stringify(fbps.body));
    await expectFramesAsGdb(dc, event.body.threadId, backtraces[0], 'at the function breakpoint shop::Basket::total');
    let { frames, vars } = await locals(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'shop::Basket::total');
    assert.strictEqual(frames[0].line, lineOf(valuesCpp, /MARK:method/));
    assert.strictEqual(frames[1].name, 'main');

    const stop = await continueTo(dc, event.body.threadId);
    await expectFramesAsGdb(dc, stop.body.threadId, backtraces[1], `at the breakpoint on values.cpp:${line}`);
    ({ frames, vars } = await locals(dc, stop.body.threadId));
    assert.strictEqual(frames[0].line, line);
    // gdb's printers show 200 elements of a sequence, vmdbg's summaries 10.
    reference.queue = referenceLocals('gdb', path.join(work, 'values_cpp'), valuesCpp, line, 10).queue;
    for (const name of ['greeting', 'view', 'numbers', 'owned', 'shared', 'shared2', 'basket', 'n', 'names', 'primes', 'some', 'none', 'squares',
      'text', 'number', 'chain', 'queue', 'fixed', 'item', 'sitem', 'flag', 'count_ref', 'first', 'special', 'tagged']) {
      assert.ok(vars[name], `vmdbg shows the local ${name}`);
      if (CPP_HASHED[name]) {
        await expectHashedAsReference(dc, vars[name], reference[name], CPP_HASHED[name], name);
        continue;
      }
      assert.strictEqual(maskAddresses(vars[name].value), maskAddresses(reference[name]), `${name}: gdb says ${reference[name]}`);
    }
    const numbers = await children(dc, vars.numbers);
    assert.deepStrictEqual(numbers.map((c) => `${c.name}=${c.value}`), ['[0]=1', '[1]=2', '[2]=3']);
    const pointee = await children(dc, vars.shared);
    assert.deepStrictEqual(pointee.map((c) => `${c.name}=${c.value}`), ['*get()=7']);
    const names = await children(dc, vars.names);
    assert.deepStrictEqual(names.map((c) => `${c.name}=${c.value}`), ['[1]="one"', '[2]="two"', '[3]="three"']);
    // A deque across its buffers: the last page is the back of the queue.
    assert.strictEqual(vars.queue.indexedVariables, 203);
    const front = await children(dc, vars.queue, 0, 4);
    assert.deepStrictEqual(front.map((c) => `${c.name}=${c.value}`), ['[0]=-2', '[1]=-1', '[2]=0', '[3]=0']);
    const back = await children(dc, vars.queue, 200, 3);
    assert.deepStrictEqual(back.map((c) => `${c.name}=${c.value}`), ['[200]=197', '[201]=198', '[202]=199']);
    const chain = await children(dc, vars.chain);
    assert.deepStrictEqual(chain.map((c) => `${c.name}=${c.value}`), ['[0]=4', '[1]=5', '[2]=6']);
    const text = await children(dc, vars.text);
    assert.deepStrictEqual(text.map((c) => `${c.name}=${c.value}`), ['[index 1]="text"']);
    assert.strictEqual(vars.fixed.indexedVariables, 4);
    assert.strictEqual(await evaluate(dc, frames[0].id, 'numbers[2]'), '3');
    assert.strictEqual(await evaluate(dc, frames[0].id, 'basket.items[0].count'), '2');

    // C++'s own forms through the library types; calls say they are calls.
    const frameId = frames[0].id;
    await expectEvaluations(dc, frameId, [
      ['item->count', '4'],
      ['sitem->name', '"fig"'],
      ['(*item).name', '"pear"'],
      ['*owned', '42'],
      ['*some', '5'],
      ['queue[202]', '199'],
      ['fixed[2]', '7'],
      ['names[3]', '"three"'],
      ['chain[1]', '5'],
      ['first.count', '2'],
      ['special.discount', '0.5'],
      ['tagged.tags[1]', '2'],
    ]);
    // A base class is a row named as gdb names it, holding its members.
    const special = await children(dc, vars.special);
    assert.deepStrictEqual(special.map((c) => c.name), ['shop::Item', 'discount']);
    assert.deepStrictEqual((await children(dc, special[0])).map((c) => `${c.name}=${c.value}`), ['name="plum"', 'count=3']);
    await assert.rejects(evaluate(dc, frameId, 'names["one"]'), /has no element \["one"\]/);
    await assert.rejects(evaluate(dc, frameId, 'numbers.size()'), /`size\(…\)` needs a function call/);

    // Hex (format.hex) against gdb's p/x.
    const [numbersHex, basketHex, fixedHex] = reference.printed;
    assert.strictEqual(await evaluate(dc, frameId, 'numbers', { hex: true }), numbersHex);
    assert.strictEqual(await evaluate(dc, frameId, 'basket', { hex: true }), basketHex);
    assert.strictEqual(await evaluate(dc, frameId, 'fixed', { hex: true }), fixedHex);

    // Copy as Expression: every row's evaluateName evaluates to the row.
    const missing = [];
    for (const name of ['numbers', 'basket', 'item', 'sitem', 'names', 'primes', 'some', 'squares', 'text', 'chain', 'queue', 'fixed']) {
      assert.strictEqual(vars[name].evaluateName, name);
      missing.push(...await checkEvaluateNames(dc, frameId, vars[name], 3));
    }
    assert.deepStrictEqual(missing, ['text > [index 1]'], 'only a variant\'s alternative (std::get<1> is a call) has no expression');

    // setVariable inside containers: a std::vector element, a struct
    // field in a vector, a field through a unique_ptr, a bool.
    assert.strictEqual(await setRow(dc, vars.numbers, '[1]', '20'), '20');
    assert.strictEqual(await evaluate(dc, frameId, 'numbers'), 'std::vector of length 3, capacity 3 = {1, 20, 3}');
    const basket = await children(dc, vars.basket);
    const first = (await children(dc, basket[0]))[0];
    assert.strictEqual(await setRow(dc, first, 'count', '9'), '9');
    assert.strictEqual(await evaluate(dc, frameId, 'basket.items[0].count'), '9');
    const itemPointee = (await children(dc, vars.item))[0];
    assert.strictEqual(await setRow(dc, itemPointee, 'count', '-3'), '-3');
    const scopes = await dc.scopesRequest({ frameId });
    const localsRef = scopes.body.scopes.find((s) => s.name === 'Locals');
    assert.strictEqual(await setRow(dc, localsRef, 'flag', 'false'), 'false');
    assert.match(await continueToExit(dc, stop.body.threadId), /1 0 3 203 4 -3 5 0 1 9 3 5\n/, 'the program printed what was set');
  });
});
