/**
 * Looking up the proxy user. /etc/passwd first (what a container or a plain host has);
 * `getent passwd` as a fallback so users from NSS sources (LDAP, sssd) are found too.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { PasswdEntry, UserLookup } from '../config/lookups.js';

export type { PasswdEntry, UserLookup };

/** Entries of passwd(5) text; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const [name, , uidText] = line.split(':');
    if (!name || uidText === undefined || !/^\d+$/.test(uidText)) continue;
    entries.push({ name, uid: Number(uidText) });
  }
  return entries;
}

/** A lookup over fixed entries (tests, or an already-read passwd file). */
export function staticUserLookup(entries: PasswdEntry[]): UserLookup {
  return {
    byUid: (uid) => entries.find((e) => e.uid === uid),
    localName: (uid) => entries.find((e) => e.uid === uid)?.name,
    byName: (name) => entries.find((e) => e.name === name),
  };
}

function getent(key: string): PasswdEntry | undefined {
  try {
    const out = execFileSync('getent', ['passwd', key], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] });
    return parsePasswd(out)[0];
  } catch {
    return undefined; // not found (exit 2) or no getent on this host
  }
}

/** The host's users; the passwd file is read on first use, not at import. */
export function systemUserLookup(passwdPath = '/etc/passwd'): UserLookup {
  let local: UserLookup | undefined;
  const fromFile = (): UserLookup => {
    if (!local) {
      let text = '';
      try {
        text = readFileSync(passwdPath, 'utf8');
      } catch {
        // No readable passwd file: only getent can answer.
      }
      local = staticUserLookup(parsePasswd(text));
    }
    return local;
  };
  return {
    byUid: (uid) => fromFile().byUid(uid) ?? getent(String(uid)),
    localName: (uid) => fromFile().localName(uid),
    byName: (name) => fromFile().byName(name) ?? (/^\d+$/.test(name) ? undefined : getent(name)),
  };
}
