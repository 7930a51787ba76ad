/**
 * The SIMD kernels module shares TF.js's wasm heap: it must have no globals or data of its own
 * and import only env.memory, and src/gen must hold exactly what the build produces.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { compileKernels, OUTPUT, renderKernels } from '../../scripts/build-kernels.js';
import { SIMD_KERNELS_BASE64 } from '../../src/gen/wasm/simd-kernels.js';
import { checkSharedHeapModule } from '../../src/metric/backend/simd/module-check.js';

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const str = (s: string): number[] => [s.length, ...Buffer.from(s)];
/** An import section with one import `module.name` of `kind` (0 function type 0, 2 memory min 0). */
const importSection = (module: string, name: string, kind: 0 | 2): number[] => {
  const body = [1, ...str(module), ...str(name), kind, ...(kind === 2 ? [0, 0] : [0])];
  return [2, body.length, ...body];
};
const TYPE_SECTION = [1, 4, 1, 0x60, 0, 0]; // one type: () -> ()
const MEMORY_IMPORT = importSection('env', 'memory', 2);
const GLOBAL_SECTION = [6, 6, 1, 0x7f, 0, 0x41, 0, 0x0b]; // one immutable i32 = 0
const DATA_SECTION = [11, 7, 1, 0, 0x41, 0, 0x0b, 1, 42]; // one byte at address 0

const module = (...sections: number[][]): Uint8Array => Uint8Array.from([...HEADER, ...sections.flat()]);

describe('checkSharedHeapModule', () => {
  it('accepts the generated module', () => {
    expect(() => checkSharedHeapModule(Buffer.from(SIMD_KERNELS_BASE64, 'base64'))).not.toThrow();
  });

  it('accepts a module that only imports env.memory', () => {
    expect(() => checkSharedHeapModule(module(MEMORY_IMPORT))).not.toThrow();
  });

  it.each([
    ['globals', module(MEMORY_IMPORT, GLOBAL_SECTION), /has globals/],
    ['data', module(MEMORY_IMPORT, DATA_SECTION), /has data segments/],
    ['data count', module(MEMORY_IMPORT, [12, 1, 0]), /has data segments/],
    ['no memory import', module(), /imports \[\]/],
    ['a function import', module(TYPE_SECTION, importSection('env', 'abort', 0)), /env\.abort/],
    ['another memory', module(importSection('js', 'mem', 2)), /js\.mem/],
  ])('rejects a module with %s', (_, bytes, message) => {
    expect(() => checkSharedHeapModule(bytes)).toThrow(message);
  });

  it('rejects what is not wasm', () => {
    expect(() => checkSharedHeapModule(Uint8Array.from([1, 2, 3]))).toThrow();
  });
});

describe('the kernels build', () => {
  it('is deterministic and matches src/gen', async () => {
    const [first, second] = [await compileKernels(), await compileKernels()];
    expect(Buffer.from(first).equals(Buffer.from(second))).toBe(true);
    expect(await readFile(new URL(`../../${OUTPUT}`, import.meta.url), 'utf8')).toBe(renderKernels(first));
  }, 60_000);
});
