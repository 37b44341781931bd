/**
 * The host lookups the config resolver is given (users, resolv.conf, executables on
 * PATH): the real host's. The resolver itself never reads the host.
 */
import { readFileSync } from 'node:fs';
import type { HostLookups } from '../config/lookups.js';
import { findExecutable } from './executables.js';
import { systemUserLookup } from './users.js';

export function systemHostLookups(): HostLookups {
  return { users: systemUserLookup(), readResolvConf: (path) => readFileSync(path, 'utf8'), hasExecutable: (name) => findExecutable(name) !== undefined };
}
