import * as assert from 'assert';

import {
  debugConfiguration,
  definitionPattern,
  endOfDefinition,
  failureLocation,
  failureMessage,
  frameworkOf,
  LineSplitter,
  lineOf,
  listCommand,
  parseEvent,
  parseTestSettings,
  runCommand,
} from '../../src/testEvents';

describe('the vmdbg.tests setting', () => {
  it('takes paths and objects, relative to the workspace folder', () => {
    const r = parseTestSettings(
      ['target/debug/deps/iso-1', { binary: '${workspaceFolder}/gt', setup: ['echo hi > /root/x'], engine: 'qemu' }],
      '/ws',
    );
    assert.deepStrictEqual(r.errors, []);
    assert.deepStrictEqual(r.binaries, [
      { binary: '/ws/target/debug/deps/iso-1', setup: [] },
      { binary: '/ws/gt', setup: ['echo hi > /root/x'], engine: 'qemu' },
    ]);
  });

  it('names each entry it cannot use', () => {
    const r = parseTestSettings([{ path: 'x' }, { binary: 'b', setup: 'not a list' }, { binary: 'b', engine: 'vbox' }], '/ws');
    assert.deepStrictEqual(r.binaries, []);
    assert.deepStrictEqual(r.errors, [
      'vmdbg.tests[0]: expected a path or an object with "binary" (the test binary\'s path)',
      'vmdbg.tests[1].setup: expected a list of shell commands',
      'vmdbg.tests[2].engine: expected "auto", "kvm" or "qemu"',
    ]);
    assert.strictEqual(parseTestSettings('x').errors.length, 1);
    assert.deepStrictEqual(parseTestSettings(undefined), { binaries: [], errors: [] });
  });
});

describe('vmdbg test command lines', () => {
  const b = { binary: '/ws/iso', setup: ['echo set up > /root/from-setup'], engine: 'qemu' };
  it('lists in the guest after the setup', () => {
    assert.deepStrictEqual(listCommand(b), [
      'test', '--format', 'json', '--engine', 'qemu', '--setup', 'echo set up > /root/from-setup', '--list', '--', '/ws/iso',
    ]);
  });
  it('runs everything, or exactly the chosen tests', () => {
    assert.deepStrictEqual(runCommand(b, 'libtest').slice(-2), ['--', '/ws/iso']);
    assert.deepStrictEqual(runCommand(b, 'libtest', ['tests::a', 'tests::b']).slice(-5), [
      '/ws/iso', 'tests::a', 'tests::b', '--exact', '--include-ignored',
    ]);
    assert.deepStrictEqual(runCommand(b, 'googletest', ['S.a', 'S.b']).slice(-1), ['--gtest_filter=S.a:S.b']);
  });
  it('debugs one test with the same setup', () => {
    assert.deepStrictEqual(debugConfiguration(b, 'tests::a'), {
      type: 'vmdbg', request: 'launch', name: 'Debug test tests::a', program: '/ws/iso', test: 'tests::a',
      setup: ['echo set up > /root/from-setup'], engine: 'qemu',
    });
    assert.ok(!('setup' in debugConfiguration({ binary: '/x', setup: [] }, 't')));
  });
  it('tells GoogleTest binaries from libtest ones by their flags', () => {
    assert.strictEqual(frameworkOf(Buffer.from('\x7fELF...--gtest_list_tests...')), 'googletest');
    assert.strictEqual(frameworkOf(Buffer.from('\x7fELF...--list --format terse')), 'libtest');
  });
});

describe('vmdbg test --format json events', () => {
  it('parses event lines and ignores the rest', () => {
    assert.deepStrictEqual(parseEvent('{"type":"test","event":"started","name":"a"}'), { type: 'test', event: 'started', name: 'a' });
    assert.strictEqual(parseEvent('vmdbg: booting the test VM'), undefined);
    assert.strictEqual(parseEvent('{"type":"other"}'), undefined);
    assert.strictEqual(parseEvent('{broken'), undefined);
  });
  it('splits a stream into lines across chunks', () => {
    const s = new LineSplitter();
    assert.deepStrictEqual(s.push('{"a":'), []);
    assert.deepStrictEqual(s.push('1}\n{"b"'), ['{"a":1}']);
    assert.deepStrictEqual(s.push(':2}\n'), ['{"b":2}']);
    assert.deepStrictEqual(s.push('tail'), []);
    assert.deepStrictEqual(s.end(), ['tail']);
  });
});

describe('where a test failed', () => {
  // As the isolation crate's deliberately_fails prints it under vmdbg test.
  const rust = [
    'running 1 test',
    "thread 'tests::deliberately_fails' panicked at src/lib.rs:59:9:",
    'assertion `left == right` failed: deliberately wrong arithmetic',
    '  left: 2',
    ' right: 3',
    'note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace',
  ].join('\n');
  it("reads Rust's panic location and message", () => {
    assert.deepStrictEqual(failureLocation(rust), { file: 'src/lib.rs', line: 59, column: 9 });
    assert.strictEqual(
      failureMessage({ stdout: '', stderr: rust, message: 'exit status 101' }),
      'assertion `left == right` failed: deliberately wrong arithmetic\n  left: 2\n right: 3',
    );
  });
  it("reads Rust's location before 1.73", () => {
    assert.deepStrictEqual(failureLocation("thread 'a' panicked at 'boom', src/main.rs:3:5"), { file: 'src/main.rs', line: 3, column: 5 });
  });
  it("reads GoogleTest's", () => {
    const out = '[ RUN      ] Iso.Fails\n/src/iso_test.cpp:31: Failure\nExpected equality of these values:\n  1 + 1\n  3\n[  FAILED  ] Iso.Fails (0 ms)\n';
    assert.deepStrictEqual(failureLocation(out), { file: '/src/iso_test.cpp', line: 31 });
    assert.strictEqual(failureMessage({ stdout: out, stderr: '', message: 'exit status 1' }), 'Expected equality of these values:\n  1 + 1\n  3');
  });
  it("falls back to vmdbg test's reason", () => {
    assert.strictEqual(failureLocation('killed'), undefined);
    assert.strictEqual(failureMessage({ stdout: 'x', stderr: '', message: 'killed by signal 9' }), 'killed by signal 9');
  });
});

describe('where a test is defined', () => {
  it('finds a Rust test function by its last path segment', () => {
    const src = 'mod tests {\n    #[test]\n    fn deliberately_fails_too() {}\n    #[test]\n    fn deliberately_fails() {\n';
    assert.strictEqual(lineOf(src, definitionPattern('tests::deliberately_fails', 'libtest')), 4);
  });
  it('spans the body, so a cursor inside it is in the test', () => {
    const src = '#[test]\nfn a() {\n    if x { y(); }\n}\nfn b() {}\n';
    assert.strictEqual(endOfDefinition(src, 1), 3);
    assert.strictEqual(endOfDefinition(src, 4), 4);
    assert.strictEqual(endOfDefinition('fn decl();', 0), 0);
  });
  it('finds a GoogleTest TEST/TEST_F', () => {
    const src = '#include <gtest/gtest.h>\n\nTEST(Iso, MarkerOne) {}\nTEST_F(Fixture, Two) {}\n';
    assert.strictEqual(lineOf(src, definitionPattern('Iso.MarkerOne', 'googletest')), 2);
    assert.strictEqual(lineOf(src, definitionPattern('Fixture.Two', 'googletest')), 3);
    assert.strictEqual(lineOf(src, definitionPattern('Iso.Other', 'googletest')), undefined);
  });
});
