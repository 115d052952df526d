// The shape of the product code (registry/src and operator/src, tests and their helpers
// aside), read from its import statements:
//   - the build (tsconfig.json) compiles exactly the product files, and the type check
//     (tsconfig.test.json) every test file and helper;
//   - no product file imports a test file or helper: TypeScript compiles what a file imports
//     whatever the tsconfig leaves out, so one would bring test code into dist/ and the images;
//   - no import cycle, type-only imports included;
//   - the tar thread (pack/tar-thread.ts, a worker) loads none of the event loop's side of pack/
//     (type-only imports aside: they are erased, so they load nothing), and a compression thread
//     (pack/compression-thread.ts) none of the registry at all.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const REPO = path.resolve(import.meta.dirname, '../..');
const WORKSPACES = ['registry', 'operator'];
/** How operator/src imports the registry: the package's exports map `./*` to `./dist/*`. */
const REGISTRY_PACKAGE = '@nixery/registry/';

const isTest = (file: string) => file.endsWith('.test.ts') || /(^|\/)test-support(\.ts$|\/)/.test(file);

// Cycles known and not yet broken, each from its first file in sorted order. The test fails
// once one is gone, so that it is struck from here.
const KNOWN_CYCLES: string[] = [];

interface Module {
  /** Every module this one imports, type-only imports included. */
  imports: string[];
  /** The modules importing this one loads. */
  loads: string[];
  /** Those it loads before it runs (not by a dynamic `import()`). */
  eager: string[];
}

/** Repository-relative paths of the modules a specifier names, if it names one of ours. */
function resolve(from: string, specifier: string): string | undefined {
  if (specifier.startsWith('.')) return path.posix.join(path.posix.dirname(from), specifier);
  if (specifier.startsWith(REGISTRY_PACKAGE)) return `registry/src/${specifier.slice(REGISTRY_PACKAGE.length).replace(/\.js$/, '.ts')}`;
  return undefined;
}

function parse(file: string): Module {
  const source = ts.createSourceFile(file, readFileSync(path.join(REPO, file), 'utf8'), ts.ScriptTarget.Latest);
  const module: Module = { imports: [], loads: [], eager: [] };
  const add = (specifier: ts.Expression | undefined, typeOnly: boolean, dynamic = false) => {
    if (!specifier || !ts.isStringLiteral(specifier)) return;
    const target = resolve(file, specifier.text);
    if (target === undefined) return;
    module.imports.push(target);
    if (!typeOnly) module.loads.push(target);
    if (!typeOnly && !dynamic) module.eager.push(target);
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node)) add(node.moduleSpecifier, node.importClause?.isTypeOnly ?? false);
    else if (ts.isExportDeclaration(node)) add(node.moduleSpecifier, node.isTypeOnly);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0], false, true);
    else if (ts.isImportTypeNode(node)) add(ts.isLiteralTypeNode(node.argument) ? node.argument.literal : undefined, true);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return module;
}

const files = WORKSPACES.flatMap((ws) =>
  readdirSync(path.join(REPO, ws, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => `${ws}/src/${f.split(path.sep).join('/')}`),
).sort();
const modules = new Map(files.map((f) => [f, parse(f)]));
const product = files.filter((f) => !isTest(f));

/** Every module `from` loads (with `eagerOnly`, before it runs), itself included. */
function loadedBy(from: string, eagerOnly = false): Set<string> {
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const module = modules.get(file);
    for (const next of (eagerOnly ? module?.eager : module?.loads) ?? []) walk(next);
  };
  walk(from);
  return seen;
}

/** The files a tsconfig selects, repository-relative. */
function selected(config: string): string[] {
  const file = path.join(REPO, config);
  const { config: json, error } = ts.readConfigFile(file, ts.sys.readFile);
  assert.equal(error, undefined, config);
  const parsed = ts.parseJsonConfigFileContent(json, ts.sys, path.dirname(file), undefined, file);
  assert.deepEqual(parsed.errors, [], config);
  return parsed.fileNames.map((f) => path.relative(REPO, f).split(path.sep).join('/')).sort();
}

describe('the product code', () => {
  for (const ws of WORKSPACES) {
    it(`${ws}: the build compiles the product files, the type check every test and helper`, () => {
      const own = files.filter((f) => f.startsWith(`${ws}/`));
      assert.deepEqual(selected(`${ws}/tsconfig.json`), own.filter((f) => !isTest(f)));
      assert.deepEqual(selected(`${ws}/tsconfig.test.json`), own.filter(isTest));
    });
  }

  it('imports no test and no test helper', () => {
    const offending = product.flatMap((f) => modules.get(f)!.imports.filter(isTest).map((t) => `${f} imports ${t}`));
    assert.deepEqual(offending, []);
  });

  it('has no import cycle', () => {
    const cycles = new Set<string>();
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const walk = (file: string) => {
      state.set(file, 'open');
      stack.push(file);
      for (const next of modules.get(file)?.imports ?? []) {
        if (state.get(next) === 'open') {
          const cycle = stack.slice(stack.indexOf(next));
          const first = cycle.indexOf([...cycle].sort()[0]!);
          const from = [...cycle.slice(first), ...cycle.slice(0, first)];
          cycles.add([...from, from[0]].join(' -> '));
        } else if (!state.has(next) && modules.has(next) && !isTest(next)) walk(next);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const f of product) if (!state.has(f)) walk(f);
    assert.deepEqual([...cycles].sort(), KNOWN_CYCLES);
  });

  it('the command line starts without the HTTP app or a cloud storage backend (each command loads what it uses)', () => {
    const atStart = loadedBy('registry/src/cli/main.ts', true);
    assert.ok(atStart.has('registry/src/runtime.ts'), 'the walk follows the command line\'s imports');
    const offending = [...atStart].filter((f) => f.startsWith('registry/src/http/') || f === 'registry/src/server.ts' || f === 'registry/src/storage/gcs.ts' || f === 'registry/src/storage/s3.ts');
    assert.deepEqual(offending, []);
  });

  it('the tar thread loads none of the event loop\'s side of pack/', () => {
    const thread = loadedBy('registry/src/pack/tar-thread.ts');
    assert.ok(thread.has('registry/src/pack/tar-blocks.ts'), 'the walk follows the thread\'s imports');
    // What reads the tar's blocks and starts the thread (layer-tar.ts), what deflates them on
    // libuv's pool (compression-pool.ts), and every module that loads either.
    const eventLoop = ['registry/src/pack/layer-tar.ts', 'registry/src/pack/compression-pool.ts'];
    const offending = [...thread].filter((f) => eventLoop.some((m) => loadedBy(f).has(m)));
    assert.deepEqual(offending, [], `the tar thread loads ${[...thread].join(', ')}`);
  });

  it('a compression thread loads none of the registry: only Node\'s zlib, on a block at a time', () => {
    const thread = loadedBy('registry/src/pack/compression-thread.ts');
    assert.deepEqual([...thread].filter((f) => f !== 'registry/src/pack/compression-thread.ts'), []);
  });
});
