/**
 * Launch-configuration resolution for the `vmdbg` debug type: what F5 does
 * with no launch.json, the defaults a configuration gets, and the errors a
 * user sees when one is incomplete. Pure functions over plain data, so unit
 * tests run without VS Code.
 */

export interface DebugConfig {
  type?: string;
  request?: string;
  name?: string;
  [key: string]: unknown;
}

/** What the editor knows when F5 is pressed. */
export interface EditorContext {
  /** The file in the active editor, if any. */
  activeFile?: { path: string; languageId: string };
  workspaceFolder?: string;
  /** Whether a path exists (a file the build produced). */
  exists(path: string): boolean;
  /** A file's text, or undefined if it cannot be read (Cargo.toml). */
  read(path: string): string | undefined;
}

export type Resolution =
  | { config: DebugConfig }
  | { error: string };

const C_LIKE = new Set(['c', 'cpp']);

function dirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** The package name in a Cargo.toml, read without a TOML parser. */
export function cargoPackageName(cargoToml: string): string | undefined {
  let inPackage = false;
  for (const raw of cargoToml.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inPackage = line === '[package]';
      continue;
    }
    const m = inPackage && /^name\s*=\s*"([^"]+)"/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** Walks up from `start` to the nearest folder with a Cargo.toml. */
function findCargoRoot(start: string, ctx: EditorContext, stopAt?: string): string | undefined {
  let dir = start;
  for (;;) {
    if (ctx.exists(`${dir}/Cargo.toml`)) return dir;
    if (dir === '/' || dir === stopAt) return undefined;
    dir = dirname(dir);
  }
}

/**
 * The program F5 means for the active file: a C/C++ file's executable of the
 * same name beside it (`make hello` builds `hello` from `hello.c`) or `a.out`;
 * a Rust file's crate binary under target/debug.
 */
export function guessProgram(ctx: EditorContext): Resolution {
  const file = ctx.activeFile;
  if (!file) {
    return { error: 'Open a C, C++ or Rust source file, or add a vmdbg configuration to launch.json.' };
  }
  if (C_LIKE.has(file.languageId)) {
    const dir = dirname(file.path);
    const stem = basename(file.path).replace(/\.[^.]+$/, '');
    for (const candidate of [`${dir}/${stem}`, `${dir}/a.out`, `${dir}/build/${stem}`]) {
      if (ctx.exists(candidate)) return { config: { program: candidate } };
    }
    return {
      error: `No executable built from ${basename(file.path)}: looked for ${stem}, a.out and build/${stem} beside it. Build it with -g (e.g. \`cc -g -o ${stem} ${basename(file.path)}\`) or set "program" in launch.json.`,
    };
  }
  if (file.languageId === 'rust') {
    const root = findCargoRoot(dirname(file.path), ctx);
    const name = root && cargoPackageName(ctx.read(`${root}/Cargo.toml`) ?? '');
    if (!root || !name) {
      return { error: 'No Cargo.toml with a [package] name above this file; set "program" in launch.json.' };
    }
    const binary = `${root}/target/debug/${name}`;
    if (!ctx.exists(binary)) {
      return { error: `${binary} does not exist yet: run \`cargo build\` first (vmdbg debugs the debug build).` };
    }
    return { config: { program: binary, cwd: '/' } };
  }
  return {
    error: `vmdbg does not know how to debug a ${file.languageId} file without a launch configuration; add one to launch.json.`,
  };
}

/** Which kind of session a configuration asks for. */
export type SessionKind = 'program' | 'kernel' | 'attach';

export function sessionKind(config: DebugConfig): SessionKind | undefined {
  if (config.request === 'attach') return 'attach';
  if (typeof config.kernel === 'string') return 'kernel';
  if (typeof config.program === 'string') return 'program';
  return undefined;
}

/**
 * Fills what the user left out. An empty configuration (F5 with no
 * launch.json) becomes "debug the active file's program in a VM".
 */
export function resolveConfiguration(config: DebugConfig, ctx: EditorContext): Resolution {
  let resolved: DebugConfig = { ...config };
  if (!resolved.type && !resolved.request && !resolved.name) {
    const guess = guessProgram(ctx);
    if ('error' in guess) return guess;
    resolved = {
      type: 'vmdbg',
      request: 'launch',
      name: 'Debug program in VM',
      stopOnEntry: false,
      ...guess.config,
    };
  }
  resolved.type = 'vmdbg';
  resolved.request = resolved.request ?? 'launch';
  resolved.name = resolved.name ?? 'vmdbg';

  const kind = sessionKind(resolved);
  switch (kind) {
    case 'attach':
      if (typeof resolved.gdbServer !== 'string' || resolved.gdbServer === '') {
        return { error: 'An attach configuration needs "gdbServer": "host:port" or "unix:/path/to/socket".' };
      }
      return { config: resolved };
    case 'kernel':
      resolved.stopOnEntry = resolved.stopOnEntry ?? false;
      // A bare-metal kernel needs little; a Linux kernel ("default", or one
      // with an initrd or an engine) gets vmdbg's own default (512M).
      if (resolved.kernel !== 'default' && resolved.initrd === undefined && resolved.engine === undefined) {
        resolved.mem = resolved.mem ?? '128M';
      }
      resolved.cpus = resolved.cpus ?? 1;
      return { config: resolved };
    case 'program':
      resolved.args = resolved.args ?? [];
      resolved.cwd = resolved.cwd ?? '/';
      resolved.stopOnEntry = resolved.stopOnEntry ?? false;
      return { config: resolved };
    default:
      return {
        error: 'A vmdbg launch configuration needs "program" (a program to debug inside a VM) or "kernel" (a guest kernel ELF).',
      };
  }
}

/** The configuration a new launch.json starts with (package.json has the same). */
export const initialConfigurations: DebugConfig[] = [
  {
    type: 'vmdbg',
    request: 'launch',
    name: 'Debug program in VM',
    program: '${workspaceFolder}/a.out',
    args: [],
    stopOnEntry: false,
  },
];
