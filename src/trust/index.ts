/** Trust: identities in certificates, making certificates, loading and checking credentials. */
export * from './identity.js';
export * from './credentials.js';
export * from './cert-dir.js';
export { createCa, issueCertificate } from './certificates.js';
export type { PemPair, ValidityOptions } from './certificates.js';
export * from './client-tls.js';
export * from './cluster-file.js';
