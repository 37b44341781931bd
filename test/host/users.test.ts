import { describe, expect, it } from 'vitest';
import { parsePasswd, staticUserLookup, systemUserLookup } from '../../src/host/users.js';

describe('passwd lookup', () => {
  const text = 'root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\nkuma-dp:x:5678:5678::/home/kuma-dp:/usr/sbin/nologin\nbad:x:notanumber:1::/:/bin/sh\n';

  it('parses name and uid, skipping malformed lines', () => {
    expect(parsePasswd(text)).toEqual([
      { name: 'root', uid: 0 },
      { name: 'kuma-dp', uid: 5678 },
    ]);
  });

  it('looks up by uid and by name', () => {
    const users = staticUserLookup(parsePasswd(text));
    expect(users.byUid(5678)?.name).toBe('kuma-dp');
    expect(users.byName('root')?.uid).toBe(0);
    expect(users.byName('nobody-here')).toBeUndefined();
  });

  it('the system lookup finds root on this host', () => {
    expect(systemUserLookup().byUid(0)?.name).toBe('root');
    expect(systemUserLookup('/nonexistent/passwd').byName('root')?.uid).toBe(0); // via getent
  });

  it('names a bare uid from the passwd file alone (no getent)', () => {
    expect(systemUserLookup().localName(0)).toBe('root');
    expect(systemUserLookup('/nonexistent/passwd').localName(0)).toBeUndefined();
    expect(systemUserLookup('/nonexistent/passwd').byUid(0)?.name).toBe('root'); // the default user still asks NSS
  });
});
