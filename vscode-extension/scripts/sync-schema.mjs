// Keeps the extension's `configurationAttributes` equal to the launch
// schema the DAP server publishes (dap-server/schema/launch.schema.json),
// so VS Code's launch.json completion and validation never drift from what
// `vmdbg dap` accepts.
//   node scripts/sync-schema.mjs          rewrite package.json from the schema
//   node scripts/sync-schema.mjs --check  fail if they differ (the build runs this)
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const schemaPath = join(here, '..', '..', 'dap-server', 'schema', 'launch.schema.json');
const packagePath = join(here, '..', 'package.json');

export function attributesFromSchema(schema) {
  const out = {};
  for (const request of ['launch', 'attach']) {
    const part = schema[request] ?? schema.definitions?.[request] ?? schema.$defs?.[request];
    if (!part) throw new Error(`${schemaPath}: no "${request}" configuration in the schema`);
    out[request] = part;
  }
  return out;
}

function main() {
  let schema;
  try {
    schema = JSON.parse(readFileSync(schemaPath, 'utf8'));
  } catch (e) {
    console.error(`sync-schema: cannot read the DAP server's launch schema ${schemaPath}: ${e.message}`);
    process.exit(1);
  }
  const pkg = JSON.parse(readFileSync(packagePath, 'utf8'));
  const debuggerEntry = pkg.contributes.debuggers.find((d) => d.type === 'vmdbg');
  const wanted = attributesFromSchema(schema);
  const same = JSON.stringify(debuggerEntry.configurationAttributes) === JSON.stringify(wanted);
  if (process.argv.includes('--check')) {
    if (!same) {
      console.error('sync-schema: package.json configurationAttributes differ from dap-server/schema/launch.schema.json; run `npm run sync-schema`');
      process.exit(1);
    }
    return;
  }
  debuggerEntry.configurationAttributes = wanted;
  const tmp = `${packagePath}.tmp`;
  writeFileSync(tmp, JSON.stringify(pkg, null, 2) + '\n');
  renameSync(tmp, packagePath);
  console.log(same ? 'sync-schema: already in sync' : 'sync-schema: package.json updated');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
