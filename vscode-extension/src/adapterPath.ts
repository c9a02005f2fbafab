/**
 * Finding the `vmdbg` binary the extension starts as its debug adapter, and
 * checking it is new enough. Pure functions, tested without VS Code.
 */

/** The oldest `vmdbg` whose DAP server this extension speaks to. */
export const MIN_VERSION = [0, 1, 0];

export interface Lookup {
  /** The `vmdbg.path` setting ('' when unset). */
  setting: string;
  /** The extension's install folder (a bundled binary lives in bin/). */
  extensionPath: string;
  /** $PATH. */
  pathEnv: string;
  isExecutable(path: string): boolean;
}

export type Found = { path: string; from: 'setting' | 'bundled' | 'PATH' } | { error: string };

export function findVmdbg(lookup: Lookup): Found {
  if (lookup.setting) {
    return lookup.isExecutable(lookup.setting)
      ? { path: lookup.setting, from: 'setting' }
      : { error: `The vmdbg.path setting names ${lookup.setting}, which is not an executable file. Fix the setting or clear it to use vmdbg from PATH.` };
  }
  const bundled = `${lookup.extensionPath}/bin/vmdbg`;
  if (lookup.isExecutable(bundled)) return { path: bundled, from: 'bundled' };
  for (const dir of lookup.pathEnv.split(':').filter(Boolean)) {
    const candidate = `${dir}/vmdbg`;
    if (lookup.isExecutable(candidate)) return { path: candidate, from: 'PATH' };
  }
  return {
    error: 'vmdbg was not found: install it (cargo install --path dap-server in the vmdbg repository) and put it on PATH, or set vmdbg.path.',
  };
}

/** `vmdbg 0.1.0` -> [0, 1, 0]; undefined for anything else. */
export function parseVersion(output: string): number[] | undefined {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(output);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function isTooOld(version: number[]): boolean {
  for (let i = 0; i < MIN_VERSION.length; i++) {
    if (version[i] !== MIN_VERSION[i]) return version[i] < MIN_VERSION[i];
  }
  return false;
}
