// Lint rules for cohort. Type-aware (typescript-eslint) so floating and misused
// promises are errors, plus rules that enforce ../shared/DESIGN.md:
//   - files under src/**/core/** stay pure: no clock, randomness, timers, process or I/O;
//   - nothing in src/ outside src/sim/ imports src/sim/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';

const simImport = {
  group: ['**/sim/**', '**/sim'],
  message: 'Only src/sim/ may import the simulator (DESIGN.md: nothing in src/ imports sim/).',
};

const coreImports = [
  simImport,
  {
    group: [
      'node:*',
      'fs',
      'fs/*',
      'net',
      'tls',
      'dgram',
      'child_process',
      'worker_threads',
      'timers',
      'timers/*',
      'perf_hooks',
      'process',
      'os',
    ],
    message: 'A core is pure: time, randomness and I/O are injected (DESIGN.md, pure cores).',
  },
  {
    group: ['**/wire/**', '**/transport/**', '**/rpc/**', '**/node/**', '**/cli/**'],
    message: 'A core/ folder imports only lib/ and its siblings.',
  },
];

const coreGlobals = [
  'Date',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'performance',
  'process',
  'require',
].map((name) => ({
  name,
  message: 'A core is pure: time reaches it as ticks, randomness through an injected Random.',
}));

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'dist-all/**',
      'node_modules/**',
      'coverage/**',
      '.cohort/**',
      '**/testdata/**',
      // Peer harnesses copied verbatim from the peer measurements (bench/peers/README.md).
      'bench/peers/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
      globals: { ...globals.node },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/sim/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [simImport] }] },
  },
  {
    files: ['src/**/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: coreImports }],
      'no-restricted-globals': ['error', ...coreGlobals],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Use the injected Random.' },
        { object: 'globalThis', property: 'process', message: 'A core does not touch process.' },
        { object: 'globalThis', property: 'Date', message: 'A core does not read the clock.' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: 'AwaitExpression', message: 'A core is synchronous: no await.' },
        { selector: 'FunctionDeclaration[async=true]', message: 'A core is synchronous.' },
        { selector: 'ArrowFunctionExpression[async=true]', message: 'A core is synchronous.' },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  prettier,
);
