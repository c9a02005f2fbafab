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

/**
 * The view's rows as state, so that what the tree shows never depends on
 * which of several overlapping fetches VS Code happens to keep: VS Code
 * asks for a tree's children again only when told, answers from its own
 * cache otherwise, and a slow `getChildren` that overlaps a refresh can
 * leave the older answer on screen. Here `getChildren` returns `rows`
 * synchronously; the list changes only through `reload` (a fetch whose
 * reply is dropped when a later fetch or a take overtook it) and `taken`
 * (a take's own reply), each followed by `changed`.
 */
export class SnapshotList {
  /** Oldest first, as the DAP server lists them. */
  private names: string[] = [];
  private owner: SnapshotSession | undefined;
  private generation = 0;

  constructor(private readonly changed: () => void) {}

  get rows(): SnapshotRow[] {
    return snapshotRows({ snapshots: this.names.map((name) => ({ name })) });
  }

  /** Asks `session` (the active one) for its snapshots. */
  async reload(session: SnapshotSession | undefined): Promise<void> {
    const generation = ++this.generation;
    if (session !== this.owner) {
      this.owner = session;
      this.set([]);
    }
    if (!session) return;
    let answer: unknown;
    try {
      answer = await session.customRequest('vmdbg/snapshots');
    } catch {
      // A session that is starting or ending has no VM to ask: keep what
      // it last said.
      return;
    }
    if (generation !== this.generation || session !== this.owner) return;
    this.set(snapshotRows(answer).map((r) => r.name).reverse());
  }

  /** `session` took a snapshot `name` (the reply to `vmdbg/snapshot`). */
  taken(session: SnapshotSession, name: string): void {
    if (session !== this.owner) return;
    // A fetch still under way was asked before this take.
    this.generation++;
    this.set([...this.names.filter((n) => n !== name), name]);
  }

  private set(names: string[]): void {
    this.names = names;
    this.changed();
  }
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
