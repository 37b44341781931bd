/**
 * What the config resolver needs from the host, as interfaces it is given: the real
 * host's implementations live in src/host (lookups.ts, users.ts), tests pass static
 * ones. Config never reads the host itself.
 */

export interface PasswdEntry {
  name: string;
  uid: number;
}

export interface UserLookup {
  byUid(uid: number): PasswdEntry | undefined;
  /**
   * The name of a uid from the passwd file alone: a bare `--kuma-dp-user UID` needs no
   * passwd entry, the name only labels it, and asking NSS would start getent on every
   * install (a process; README: Start-up).
   */
  localName(uid: number): string | undefined;
  byName(name: string): PasswdEntry | undefined;
}

export interface HostLookups {
  users: UserLookup;
  /** Text of a resolv.conf file; throws (ENOENT …) when it can't be read. */
  readResolvConf(path: string): string;
  /**
   * Whether an executable is on PATH: with no --engine, a host with `nft` and no
   * iptables binary gets the nftables engine. Absent: the iptables default stands.
   */
  hasExecutable?(name: string): boolean;
}
