/** The pure auth store (users, roles, permissions) and its types. */
export * from './types.js';
export * from './auth-store.js';
