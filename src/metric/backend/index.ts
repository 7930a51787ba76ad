export * from './select.js';
export { registerWasmGradientKernels } from './wasm-gradients.js';
