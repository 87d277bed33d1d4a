import { transportCompliance } from './compliance.js';
import { tcpHarness } from './tcp-harness.js';

transportCompliance('tcp', tcpHarness);
