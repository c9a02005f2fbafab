/**
 * The Testing view's data, without VS Code: the `vmdbg.tests` setting,
 * the `vmdbg test` command lines for listing, running and selecting tests,
 * the JSON events `vmdbg test --format json` prints (one per line), where
 * a failure happened (from the test framework's own message), and where a
 * test is defined in the sources. Pure functions, unit-tested.
 */

/** One configured test binary. */
export interface TestBinary {
  /** Absolute path of the test binary on this host. */
  binary: string;
  /** `--setup` commands, run in the guest before the snapshot. */
  setup: string[];
  /** auto, kvm or qemu; absent: vmdbg's own default. */
  engine?: string;
}

export type Framework = 'libtest' | 'googletest';

/** An event line of `vmdbg test --format json`. */
export type TestEvent =
  | { type: 'suite'; event: 'started'; test_count: number }
  | { type: 'suite'; event: 'ok' | 'failed'; passed: number; failed: number; ignored: number; exec_time: number }
  | { type: 'test'; event: 'listed'; name: string; ignored: boolean }
  | { type: 'test'; event: 'started'; name: string }
  | {
      type: 'test';
      event: 'ok' | 'failed' | 'ignored';
      name: string;
      exec_time: number;
      stdout: string;
      stderr: string;
      console: string;
      message: string | null;
    };

/** A source position; `file` as the framework printed it (often relative). */
export interface SourceLocation {
  file: string;
  line: number;
  column?: number;
}

function substitute(text: string, workspaceFolder: string | undefined): string {
  return workspaceFolder === undefined ? text : text.split('${workspaceFolder}').join(workspaceFolder);
}

/**
 * `vmdbg.tests`: a list of test binaries, each a path or
 * `{ "binary": path, "setup": [commands], "engine": "qemu" }`. Relative
 * paths and `${workspaceFolder}` are taken from the workspace folder.
 * Entries that are not understood become one-line errors naming them.
 */
export function parseTestSettings(value: unknown, workspaceFolder?: string): { binaries: TestBinary[]; errors: string[] } {
  const binaries: TestBinary[] = [];
  const errors: string[] = [];
  if (value === undefined || value === null) return { binaries, errors };
  if (!Array.isArray(value)) {
    return { binaries, errors: ['vmdbg.tests: expected a list of test binaries (paths, or objects with "binary")'] };
  }
  const absolute = (p: string) => {
    const s = substitute(p, workspaceFolder);
    return s.startsWith('/') || workspaceFolder === undefined ? s : `${workspaceFolder}/${s}`;
  };
  value.forEach((entry, i) => {
    if (typeof entry === 'string' && entry) {
      binaries.push({ binary: absolute(entry), setup: [] });
      return;
    }
    if (typeof entry !== 'object' || entry === null || typeof (entry as { binary?: unknown }).binary !== 'string') {
      errors.push(`vmdbg.tests[${i}]: expected a path or an object with "binary" (the test binary's path)`);
      return;
    }
    const e = entry as { binary: string; setup?: unknown; engine?: unknown };
    if (e.setup !== undefined && !(Array.isArray(e.setup) && e.setup.every((s) => typeof s === 'string'))) {
      errors.push(`vmdbg.tests[${i}].setup: expected a list of shell commands`);
      return;
    }
    if (e.engine !== undefined && !['auto', 'kvm', 'qemu'].includes(e.engine as string)) {
      errors.push(`vmdbg.tests[${i}].engine: expected "auto", "kvm" or "qemu"`);
      return;
    }
    binaries.push({
      binary: absolute(e.binary),
      setup: (e.setup as string[] | undefined)?.map((s) => substitute(s, workspaceFolder)) ?? [],
      engine: e.engine as string | undefined,
    });
  });
  return { binaries, errors };
}

/** GoogleTest binaries carry their flag names; anything else is libtest (as `vmdbg test` decides). */
export function frameworkOf(contents: Uint8Array): Framework {
  return Buffer.from(contents.buffer, contents.byteOffset, contents.byteLength).includes('gtest_list_tests')
    ? 'googletest'
    : 'libtest';
}

function vmOptions(b: TestBinary): string[] {
  const args = ['test', '--format', 'json'];
  if (b.engine) args.push('--engine', b.engine);
  for (const s of b.setup) args.push('--setup', s);
  return args;
}

/** `vmdbg test --list` for one binary. */
export function listCommand(b: TestBinary): string[] {
  return [...vmOptions(b), '--list', '--', b.binary];
}

/**
 * `vmdbg test` for one binary: every test when `names` is undefined,
 * else exactly those (libtest: the names with --exact; GoogleTest:
 * one --gtest_filter). Ignored tests asked for by name run.
 */
export function runCommand(b: TestBinary, framework: Framework, names?: string[]): string[] {
  const args = [...vmOptions(b), '--', b.binary];
  if (names === undefined) return args;
  if (framework === 'googletest') return [...args, `--gtest_filter=${names.join(':')}`];
  return [...args, ...names, '--exact', '--include-ignored'];
}

/** The launch configuration that debugs one test alone. */
export function debugConfiguration(b: TestBinary, name: string): Record<string, unknown> {
  const config: Record<string, unknown> = {
    type: 'vmdbg',
    request: 'launch',
    name: `Debug test ${name}`,
    program: b.binary,
    test: name,
  };
  if (b.setup.length) config.setup = b.setup;
  if (b.engine) config.engine = b.engine;
  return config;
}

/** One line of `vmdbg test --format json`; undefined for anything else. */
export function parseEvent(line: string): TestEvent | undefined {
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const e = JSON.parse(text) as { type?: unknown; event?: unknown };
    if ((e.type === 'test' || e.type === 'suite') && typeof e.event === 'string') return e as TestEvent;
  } catch {
    // not an event line
  }
  return undefined;
}

/** Splits a stream into lines as chunks arrive. */
export class LineSplitter {
  private pending = '';
  push(chunk: string): string[] {
    this.pending += chunk;
    const lines = this.pending.split('\n');
    this.pending = lines.pop() ?? '';
    return lines;
  }
  end(): string[] {
    const last = this.pending;
    this.pending = '';
    return last ? [last] : [];
  }
}

/**
 * Where a failing test failed, as its framework printed it: Rust's panic
 * line (`panicked at src/lib.rs:58:9`, before Rust 1.73 `panicked at
 * '…', src/lib.rs:58:9`) or GoogleTest's `file.cpp:12: Failure`.
 */
export function failureLocation(output: string): SourceLocation | undefined {
  const rust = /panicked at (?:'.*', )?([^\s:'][^:\n]*):(\d+):(\d+)/.exec(output);
  if (rust) return { file: rust[1], line: Number(rust[2]), column: Number(rust[3]) };
  const gtest = /^(.+?):(\d+): Failure$/m.exec(output);
  if (gtest) return { file: gtest[1], line: Number(gtest[2]) };
  return undefined;
}

/** A test's message for the editor: the framework's own words where it gave some, else `vmdbg test`'s. */
export function failureMessage(e: { stdout: string; stderr: string; message: string | null }): string {
  const output = `${e.stdout}${e.stderr}`;
  const panic = /panicked at [^\n]*\n([\s\S]*?)(?:\nnote: |\n\n|$)/.exec(output);
  if (panic && panic[1].trim()) return panic[1].trim();
  const gtest = /^.+?:\d+: Failure\n([\s\S]*?)(?:\n\[ {2}FAILED|(?![\s\S]))/m.exec(output);
  if (gtest && gtest[1].trim()) return gtest[1].trim();
  return e.message ?? 'failed';
}

/**
 * A pattern for the line that defines `name` in its sources: Rust's
 * `fn LAST_SEGMENT`, GoogleTest's `TEST(Suite, Name)` (also _F and _P).
 */
export function definitionPattern(name: string, framework: Framework): RegExp {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  if (framework === 'googletest') {
    const [suite, test] = name.split('.', 2);
    return new RegExp(`^\\s*TEST(?:_F|_P)?\\(\\s*${esc(suite)}\\s*,\\s*${esc(test ?? '')}\\s*\\)`, 'm');
  }
  const last = name.split('::').pop() ?? name;
  return new RegExp(`^\\s*(?:pub\\s+)?(?:async\\s+)?fn\\s+${esc(last)}\\s*\\(`, 'm');
}

/** The 0-based line of the first match of `pattern` in `text`. */
export function lineOf(text: string, pattern: RegExp): number | undefined {
  const m = pattern.exec(text);
  if (!m) return undefined;
  const at = m.index + (m[0].length - m[0].trimStart().length);
  return text.slice(0, at).split('\n').length - 1;
}

/**
 * The 0-based line where the definition starting at `line` ends: the line
 * of the brace closing its first `{` (strings and comments are not
 * parsed; a test body rarely needs that), or `line` when there is none.
 */
export function endOfDefinition(text: string, line: number): number {
  const lines = text.split('\n');
  let depth = 0;
  let opened = false;
  for (let i = line; i < lines.length; i++) {
    for (const ch of lines[i]) {
      if (ch === '{') {
        depth++;
        opened = true;
      } else if (ch === '}' && opened && --depth === 0) {
        return i;
      }
    }
  }
  return line;
}
