/**
 * The engine's input contract; it lives in src/dataset.ts (array types in src/arrays.ts) so that the
 * storage readers can use it without importing the engine.
 */
export * from '../dataset.js';
