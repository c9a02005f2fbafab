/**
 * What the Snapshots view shows, apart from VS Code: the rows for a
 * session's `vmdbg/snapshots` answer (newest first, the newest marked),
 * the name a new snapshot gets by default, and the rule names must follow
 * (the DAP server's: they travel through engines' command languages).
 */

/** The part of a debug session this needs: its custom requests. */
export interface SnapshotSession {
  customRequest(command: string, args?: unknown): Thenable<unknown>;
}

export interface SnapshotRow {
  name: string;
  /** Shown after the name: which one is the newest. */
  description?: string;
}

/** Rows for a `vmdbg/snapshots` answer, newest first. */
export function snapshotRows(answer: unknown): SnapshotRow[] {
  const list = (answer as { snapshots?: unknown })?.snapshots;
  if (!Array.isArray(list)) return [];
  const names = list
    .map((s) => (s as { name?: unknown })?.name)
    .filter((n): n is string => typeof n === 'string');
  return names.reverse().map((name, i) => (i === 0 ? { name, description: 'newest' } : { name }));
}

/** The session's snapshots as rows; none without a session. */
export async function listSnapshots(session: SnapshotSession | undefined): Promise<SnapshotRow[]> {
  if (!session) return [];
  return snapshotRows(await session.customRequest('vmdbg/snapshots'));
}

/** `snapshot-N`, the first N not taken. */
export function nextSnapshotName(taken: string[]): string {
  for (let n = taken.length + 1; ; n++) {
    const name = `snapshot-${n}`;
    if (!taken.includes(name)) return name;
  }
}

/** Why `name` cannot name a snapshot, or undefined if it can. */
export function snapshotNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.length > 64 || !/^[A-Za-z0-9._-]+$/.test(name)) {
    return 'Use 1 to 64 letters, digits, "-", "_" or "."';
  }
  return undefined;
}
