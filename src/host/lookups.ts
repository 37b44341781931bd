/**
 * The host lookups the config resolver is given (users, resolv.conf, executables on
 * PATH): the real host's. The resolver itself never reads the host.
 */
import type { HostLookups } from '../config/resolve.js';
import { findExecutable } from './executables.js';
import { readResolvConfFile } from './resolvconf.js';
import { systemUserLookup } from './users.js';

export function systemHostLookups(): HostLookups {
  return { users: systemUserLookup(), readResolvConf: readResolvConfFile, hasExecutable: (name) => findExecutable(name) !== undefined };
}
