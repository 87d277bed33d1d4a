/** Transports: the interface and its contract, the TCP implementation, the in-process twin. */
export * from './transport.js';
export * from './frame-queue.js';
export * from './tcp-transport.js';
export * from './memory-transport.js';
