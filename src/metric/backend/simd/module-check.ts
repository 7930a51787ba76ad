/**
 * Checks that a wasm module can safely share TF.js's wasm heap: its own globals or data
 * segments would be placed at fixed addresses inside memory that the backend's allocator owns,
 * and any import other than `env.memory` would have to be supplied by us. Only section ids and
 * the import section are read; everything else is skipped by size.
 */
import { FailedPreconditionError } from '../../../errors.js';

const SECTION_IMPORT = 2;
const SECTION_GLOBAL = 6;
const SECTION_DATA = 11;
const SECTION_DATA_COUNT = 12;
const IMPORT_MEMORY = 2;

class Reader {
  offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  byte(): number {
    const value = this.bytes[this.offset++];
    if (value === undefined) throw new FailedPreconditionError('truncated module', 'wasm module');
    return value;
  }

  /** An unsigned LEB128 up to 32 bits. */
  u32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new FailedPreconditionError('malformed LEB128', 'wasm module');
  }

  name(): string {
    const length = this.u32();
    const text = new TextDecoder().decode(this.bytes.subarray(this.offset, this.offset + length));
    this.offset += length;
    return text;
  }
}

/** The module's imports as `module.name`, with memory imports marked. */
interface Import {
  name: string;
  memory: boolean;
}

function readImports(body: Reader): Import[] {
  const imports: Import[] = [];
  for (let count = body.u32(); count > 0; count--) {
    const name = `${body.name()}.${body.name()}`;
    const kind = body.byte();
    imports.push({ name, memory: kind === IMPORT_MEMORY });
    // Only a memory import may pass, so its description (flags, min, optional max) is all that
    // needs skipping; the check fails on any other kind before reading further.
    if (kind !== IMPORT_MEMORY) break;
    const flags = body.u32();
    body.u32();
    if (flags & 1) body.u32();
  }
  return imports;
}

/**
 * Throws a FailedPreconditionError naming every problem unless the module has no global, data
 * or data-count section and imports exactly `env.memory`.
 */
export function checkSharedHeapModule(bytes: Uint8Array): void {
  const reader = new Reader(bytes);
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (!magic.every((b) => reader.byte() === b)) {
    throw new FailedPreconditionError('not a wasm 1.0 binary', 'wasm module');
  }
  const problems: string[] = [];
  let imports: Import[] = [];
  while (!reader.done) {
    const id = reader.byte();
    const size = reader.u32();
    const end = reader.offset + size;
    if (id === SECTION_GLOBAL) problems.push('has globals');
    if (id === SECTION_DATA || id === SECTION_DATA_COUNT) problems.push('has data segments');
    if (id === SECTION_IMPORT) imports = readImports(reader);
    reader.offset = end;
  }
  const only = imports.length === 1 && imports[0]!.name === 'env.memory' && imports[0]!.memory;
  if (!only) problems.push(`imports [${imports.map((i) => i.name).join(', ')}], not just the memory env.memory`);
  if (problems.length > 0) {
    throw new FailedPreconditionError(problems.join('; '), 'wasm module');
  }
}
