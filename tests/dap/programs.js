// The programs the program-mode DAP tests debug, built from tests/dap/programs
// and tests/guests/programs: the program suite's (-g -O0; buildPrograms) and
// the values suite's (buildValuesPrograms). Used by test/program.test.js and
// test/values.test.js (into a temporary directory) and by the nested tier's
// image build (tests/src/nested.rs: `node tests/dap/programs.js DIR` builds
// both), which puts DIR at the same path inside L1, where `vmdbg dap` runs
// on the KVM engine.
'use strict';
const cp = require('child_process');
const fs = require('fs');
const path = require('path');

const repo = path.resolve(__dirname, '..', '..');
const programsDir = path.join(__dirname, 'programs');
const guestPrograms = path.join(repo, 'tests', 'guests', 'programs');

const sources = {
  tallyC: path.join(programsDir, 'tally.c'),
  handledC: path.join(programsDir, 'handled.c'),
  segvC: path.join(guestPrograms, 'segv.c'),
  rustMain: path.join(guestPrograms, 'rust_main.rs'),
  usesLibC: path.join(guestPrograms, 'uses_lib.c'),
  libShapeC: path.join(guestPrograms, 'libshape.c'),
  threadsC: path.join(guestPrograms, 'threads.c'),
  valuesRs: path.join(programsDir, 'values.rs'),
  valuesCpp: path.join(programsDir, 'values.cpp'),
};

function build(cmd, args) {
  const r = cp.spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
}

/** Builds every test program into `dir` (created if needed). */
function buildPrograms(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const out = (name) => path.join(dir, name);
  build('gcc', ['-g', '-O0', '-o', out('tally'), sources.tallyC]);
  build('gcc', ['-g', '-O0', '-o', out('segv'), sources.segvC]);
  build('gcc', ['-g', '-O0', '-o', out('handled'), sources.handledC]);
  build('gcc', ['-g', '-O0', '-pthread', '-o', out('threads'), sources.threadsC]);
  build('rustc', ['-g', '-C', 'opt-level=0', '-o', out('rust_main'), sources.rustMain]);
  build('gcc', ['-g', '-O0', '-shared', '-fPIC', '-o', out('libshape.so'), sources.libShapeC]);
  build('gcc', ['-g', '-O0', '-o', out('uses_lib'), sources.usesLibC, `-L${dir}`, '-lshape', `-Wl,-rpath,${dir}`]);
}

/**
 * Builds the values suite's programs into `dir`: `values` (Rust debug),
 * `values_release` (what `cargo build --release` with `debug = 2` in the
 * profile gives) and `values_cpp` (g++ -O0 -g).
 */
function buildValuesPrograms(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const out = (name) => path.join(dir, name);
  build('rustc', ['-g', '-C', 'opt-level=0', '-o', out('values'), sources.valuesRs]);
  build('rustc', ['-C', 'opt-level=3', '-C', 'debuginfo=2', '-o', out('values_release'), sources.valuesRs]);
  build('g++', ['-g', '-O0', '-o', out('values_cpp'), sources.valuesCpp]);
}

module.exports = { sources, buildPrograms, buildValuesPrograms };

if (require.main === module) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node tests/dap/programs.js OUT_DIR');
    process.exit(2);
  }
  buildPrograms(path.resolve(dir));
  buildValuesPrograms(path.resolve(dir));
  console.log(path.resolve(dir));
}
