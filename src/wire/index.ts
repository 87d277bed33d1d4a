/** The wire format: frames (length + CRC32C), message codecs with schema validation, the handshake. */
export * from './frame.js';
export * from './codec.js';
export * from './handshake.js';
