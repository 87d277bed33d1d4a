/** Logical clocks: Lamport, vector and hybrid logical clocks. Pure; timestamps are plain wire-ready values. */
export * from './lamport.js';
export * from './vector.js';
export * from './hlc.js';
