/**
 * Types for `assemblyscript/asc` (the part scripts/build-kernels.ts uses), mapped in by
 * tsconfig.check.json `paths`. The package's own asc.d.ts pulls in assemblyscript.generated.d.ts, a
 * global script declaring `namespace console { function log }`; with @types/node >= 24 (whose
 * `console` is a global augmentation) that namespace shadows Node's console in every file of the
 * program ("Property 'error' does not exist on type 'typeof console'"). Signatures copied from
 * assemblyscript 0.28 dist/asc.generated.d.ts (cli/index); extend it when the build uses more.
 */
/** An output stream. */
export interface OutputStream {
  /** Writes a chunk of data to the stream. */
  write(chunk: Uint8Array | string): void;
}
/** An in-memory output stream. */
export interface MemoryStream extends OutputStream {
  /** Resets the stream to offset zero. */
  reset(): void;
  /** Converts the output to a buffer. */
  toBuffer(): Uint8Array;
  /** Converts the output to a string. */
  toString(): string;
}
export interface APIOptions {
  stdout?: OutputStream;
  stderr?: OutputStream;
  readFile?: (filename: string, baseDir: string) => (string | null) | Promise<string | null>;
  writeFile?: (filename: string, contents: Uint8Array | string, baseDir: string) => void | Promise<void>;
  listFiles?: (dirname: string, baseDir: string) => (string[] | null) | Promise<string[] | null>;
}
export interface APIResult {
  error: Error | null;
  stdout: OutputStream;
  stderr: OutputStream;
  stats: unknown;
}
/** Runs the command line compiler with the given arguments. */
export declare function main(argv: string[], options?: APIOptions): Promise<APIResult>;
/** Creates a memory stream that can be used either as a stream or as a buffer. */
export declare function createMemoryStream(fn?: (chunk: Uint8Array | string) => void): MemoryStream;
declare const asc: { main: typeof main; createMemoryStream: typeof createMemoryStream };
export default asc;
