/**
 * Every launch configuration a user is handed: the "Add Configuration…"
 * snippets as VS Code inserts them (each placeholder at its default), the
 * `initialConfigurations`, and the `"type": "vmdbg"` examples in the
 * READMEs' json/jsonc blocks. The schema test validates them with a JSON
 * Schema validator; the DAP server's own test (dap-server/src/dap/
 * arguments.rs) runs its parser on the same sources.
 */

import { readdirSync, readFileSync } from 'fs';
import { join } from 'path';

export const extensionDir = join(__dirname, '..', '..', '..');
export const repoDir = join(extensionDir, '..');

export interface Example {
  /** Where it comes from, for messages. */
  where: string;
  config: Record<string, unknown>;
}

/**
 * A snippet string as VS Code's snippet engine inserts it: `${1:text}` is
 * `text`, `${1|a,b|}` is `a`, `$1` and `${1}` are empty, an unknown
 * variable (`${name}`, `$name`) is its name, `\$` `\}` `\\` are the
 * character. (VS Code's launch variables survive only escaped: `\${workspaceFolder}`.)
 */
export function expandSnippetText(text: string): string {
  let i = 0;
  const parse = (stopAt: string | undefined): string => {
    let s = '';
    while (i < text.length) {
      const c = text[i];
      if (c === '\\' && i + 1 < text.length && '$}\\'.includes(text[i + 1])) {
        s += text[i + 1];
        i += 2;
      } else if (stopAt && c === stopAt) {
        return s;
      } else if (c === '$' && text[i + 1] === '{') {
        i += 2;
        const head = /^([0-9]+|[A-Za-z_][A-Za-z_0-9]*)/.exec(text.slice(i));
        if (!head) throw new Error(`bad snippet placeholder at ${i} in ${JSON.stringify(text)}`);
        i += head[1].length;
        const numeric = /^[0-9]/.test(head[1]);
        if (text[i] === '}') {
          i++;
          s += numeric ? '' : head[1];
        } else if (text[i] === ':') {
          i++;
          s += parse('}');
          i++;
        } else if (text[i] === '|') {
          const end = text.indexOf('|}', i);
          if (end < 0) throw new Error(`unterminated choice in ${JSON.stringify(text)}`);
          s += text.slice(i + 1, end).split(',')[0];
          i = end + 2;
        } else {
          throw new Error(`bad snippet placeholder ${head[1]} in ${JSON.stringify(text)}`);
        }
      } else if (c === '$' && /[0-9A-Za-z_]/.test(text[i + 1] ?? '')) {
        const head = /^([0-9]+|[A-Za-z_][A-Za-z_0-9]*)/.exec(text.slice(i + 1))!;
        i += 1 + head[1].length;
        s += /^[0-9]/.test(head[1]) ? '' : head[1];
      } else {
        s += c;
        i++;
      }
    }
    if (stopAt) throw new Error(`unterminated placeholder in ${JSON.stringify(text)}`);
    return s;
  };
  return parse(undefined);
}

/**
 * A snippet body as inserted: a string starting `^` is raw JSON text (VS
 * Code inserts it without quotes, then it is part of launch.json), others
 * are strings; arrays and objects are expanded member by member.
 */
export function expandSnippet(value: unknown): unknown {
  if (typeof value === 'string') {
    return value.startsWith('^') ? JSON.parse(expandSnippetText(value.slice(1))) : expandSnippetText(value);
  }
  if (Array.isArray(value)) return value.map(expandSnippet);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandSnippet(v)]));
  }
  return value;
}

/** JSON with `//` line comments (outside strings) removed. */
function stripLineComments(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else {
      out += c;
    }
  }
  return out;
}

/** The top-level JSON values of `text`, one after another (a code block may hold several). */
function jsonValues(text: string): unknown[] {
  const values: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i;
    } else if (c === '}' || c === ']') {
      if (--depth === 0) values.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return values;
}

/** Every object with `"type": "vmdbg"` in `value`. */
function vmdbgConfigs(value: unknown, found: Record<string, unknown>[] = []): Record<string, unknown>[] {
  if (Array.isArray(value)) value.forEach((v) => vmdbgConfigs(v, found));
  else if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (o.type === 'vmdbg' && typeof o.request === 'string') found.push(o);
    else Object.values(o).forEach((v) => vmdbgConfigs(v, found));
  }
  return found;
}

/** The vmdbg configurations in a Markdown file's json/jsonc code blocks. */
export function markdownExamples(relPath: string): Example[] {
  const text = readFileSync(join(repoDir, relPath), 'utf8');
  const examples: Example[] = [];
  const block = /^```(json|jsonc)\n([\s\S]*?)^```/gm;
  for (let m; (m = block.exec(text)); ) {
    const line = text.slice(0, m.index).split('\n').length;
    let n = 0;
    for (const value of jsonValues(stripLineComments(m[2]))) {
      for (const config of vmdbgConfigs(value)) examples.push({ where: `${relPath}:${line} #${++n}`, config });
    }
  }
  return examples;
}

export function manifest(): { contributes: { debuggers: Record<string, unknown>[] } } {
  return JSON.parse(readFileSync(join(extensionDir, 'package.json'), 'utf8'));
}

/** Everything a user is handed, from package.json, the READMEs and docs/. */
export function launchExamples(): Example[] {
  const dbg = manifest().contributes.debuggers.find((d) => d.type === 'vmdbg') as {
    initialConfigurations: Record<string, unknown>[];
    configurationSnippets: { label: string; body: unknown }[];
  };
  return [
    ...dbg.configurationSnippets.map((s) => ({ where: `snippet "${s.label}"`, config: expandSnippet(s.body) as Record<string, unknown> })),
    ...dbg.initialConfigurations.map((config, i) => ({ where: `initialConfigurations[${i}]`, config })),
    ...markdownExamples('README.md'),
    ...markdownExamples('vscode-extension/README.md'),
    // The launch.json examples live in the docs/ book.
    ...readdirSync(join(repoDir, 'docs')).filter((f) => f.endsWith('.md')).sort().flatMap((f) => markdownExamples(`docs/${f}`)),
  ];
}
