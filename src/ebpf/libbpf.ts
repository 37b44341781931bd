/**
 * The libbpf binding: C signatures of exactly the libbpf 1.1 calls tpctl uses,
 * declared through koffi on first use (src/ffi.ts holds the only koffi.load), and
 * thin wrappers that turn libbpf's error convention into LibbpfError.
 *
 * libbpf 1.x convention: int-returning calls return -errno (and set errno);
 * pointer-returning calls return NULL and set errno.
 *
 * Structs whose layout we pass by pointer (bpf_tc_hook, bpf_tc_opts) are built in
 * Buffers with their offsets spelled out below, checked against
 * /usr/include/bpf/libbpf.h of libbpf 1.1 (x86_64 and arm64 are both LP64).
 */
import { closeSync } from 'node:fs';
import { constants as osConstants, endianness } from 'node:os';
import { errnoName, koffi, loadLibrary } from '../ffi.js';
import { LibbpfError } from '../errors.js';

/** An opaque native pointer handed out by koffi (bpf_object *, bpf_program *, …). */
export type NativePtr = object;

// ---- errno values the wrappers and their callers compare with -------------

export const ENOENT = osConstants.errno.ENOENT;
export const EEXIST = osConstants.errno.EEXIST;
export const ENODEV = osConstants.errno.ENODEV;
export const EINVAL = osConstants.errno.EINVAL;
/** The kernel's internal "operation not supported" (524), which bpf(2) can leak to user space. */
export const ENOTSUPP = 524;

// ---- log capture -----------------------------------------------------------

/** libbpf_print_level: 0 = WARN, 1 = INFO, 2 = DEBUG. */
export interface LibbpfLogLine {
  level: number;
  text: string;
}

const MAX_LOG_LINES = 4000;
const logLines: LibbpfLogLine[] = [];

/** Forget what libbpf printed so far (call before an operation whose log you want). */
export function clearLibbpfLog(): void {
  logLines.length = 0;
}

/** What libbpf printed since the last clear; WARN lines include verifier logs of failed loads. */
export function libbpfLog(maxLevel = 0): LibbpfLogLine[] {
  return logLines.filter((l) => l.level <= maxLevel);
}

// ---- the binding -----------------------------------------------------------

type Fn = (...args: unknown[]) => unknown;

interface Binding {
  [name: string]: Fn;
}

let binding: Binding | undefined;
// The registered print callback must stay alive for the whole process: libbpf keeps
// the pointer in a global.
let printCallback: unknown;

/** Load libbpf.so.1 and declare the functions. Throws PreflightError when it is missing. */
export function libbpf(): Binding {
  if (binding) return binding;
  const lib = loadLibrary('libbpf.so.1');
  const libc = loadLibrary('libc.so.6');

  koffi.opaque('bpf_object');
  koffi.opaque('bpf_program');
  koffi.opaque('bpf_map');
  koffi.opaque('bpf_link');
  koffi.opaque('btf');
  // libbpf 1.1 layout: sz@0 object_name@8 relaxed_maps@16 pin_root_path@24
  // (removed attach_prog_fd)@32 kconfig@40 btf_custom_path@48 kernel_log_buf@56
  // kernel_log_size@64 kernel_log_level@72, sizeof 80. koffi aligns like C.
  koffi.struct('tp_bpf_object_open_opts', {
    sz: 'size_t',
    object_name: 'const char *',
    relaxed_maps: 'bool',
    pin_root_path: 'const char *',
    removed_attach_prog_fd: 'uint32_t',
    kconfig: 'const char *',
    btf_custom_path: 'const char *',
    kernel_log_buf: 'void *',
    kernel_log_size: 'size_t',
    kernel_log_level: 'uint32_t',
  });
  // libbpf_print_fn_t takes a va_list; on LP64 ABIs it is passed as a pointer, which
  // vsnprintf accepts directly.
  koffi.proto('int tp_libbpf_print_fn(int level, const char *fmt, void *args)');

  const decls: Record<string, string> = {
    open_file: 'bpf_object *bpf_object__open_file(const char *path, const tp_bpf_object_open_opts *opts)',
    object_load: 'int bpf_object__load(bpf_object *obj)',
    object_close: 'void bpf_object__close(bpf_object *obj)',
    object_btf: 'btf *bpf_object__btf(const bpf_object *obj)',
    next_program: 'bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prog)',
    next_map: 'bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)',
    program_name: 'const char *bpf_program__name(const bpf_program *prog)',
    program_section: 'const char *bpf_program__section_name(const bpf_program *prog)',
    program_fd: 'int bpf_program__fd(const bpf_program *prog)',
    map_name: 'const char *bpf_map__name(const bpf_map *map)',
    map_type: 'int bpf_map__type(const bpf_map *map)',
    map_key_size: 'uint32_t bpf_map__key_size(const bpf_map *map)',
    map_value_size: 'uint32_t bpf_map__value_size(const bpf_map *map)',
    map_max_entries: 'uint32_t bpf_map__max_entries(const bpf_map *map)',
    attach_cgroup: 'bpf_link *bpf_program__attach_cgroup(const bpf_program *prog, int cgroup_fd)',
    attach_netns: 'bpf_link *bpf_program__attach_netns(const bpf_program *prog, int netns_fd)',
    link_pin: 'int bpf_link__pin(bpf_link *link, const char *path)',
    link_destroy: 'int bpf_link__destroy(bpf_link *link)',
    link_detach: 'int bpf_link_detach(int link_fd)',
    obj_get: 'int bpf_obj_get(const char *pathname)',
    obj_pin: 'int bpf_obj_pin(int fd, const char *pathname)',
    prog_get_fd_by_id: 'int bpf_prog_get_fd_by_id(uint32_t id)',
    obj_get_info_by_fd: 'int bpf_obj_get_info_by_fd(int bpf_fd, void *info, void *info_len)',
    map_create:
      'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)',
    map_update: 'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)',
    map_lookup: 'int bpf_map_lookup_elem(int fd, const void *key, void *value)',
    map_delete: 'int bpf_map_delete_elem(int fd, const void *key)',
    map_next_key: 'int bpf_map_get_next_key(int fd, const void *key, void *next_key)',
    tc_hook_create: 'int bpf_tc_hook_create(void *hook)',
    tc_hook_destroy: 'int bpf_tc_hook_destroy(void *hook)',
    tc_attach: 'int bpf_tc_attach(const void *hook, void *opts)',
    tc_detach: 'int bpf_tc_detach(const void *hook, const void *opts)',
    tc_query: 'int bpf_tc_query(const void *hook, void *opts)',
    set_print: 'void *libbpf_set_print(tp_libbpf_print_fn *fn)',
    btf_find_by_name_kind: 'int btf__find_by_name_kind(const btf *btf, const char *name, uint32_t kind)',
    btf_resolve_size: 'int64_t btf__resolve_size(const btf *btf, uint32_t type_id)',
    find_map: 'bpf_map *bpf_object__find_map_by_name(const bpf_object *obj, const char *name)',
    map_set_max_entries: 'int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)',
    map_update_batch: 'int bpf_map_update_batch(int fd, const void *keys, const void *values, void *count, const void *opts)',
    // status: identities of what is attached
    obj_get_info: 'int bpf_obj_get_info_by_fd(int bpf_fd, void *info, void *info_len)',
    prog_fd_by_id: 'int bpf_prog_get_fd_by_id(uint32_t id)',
    map_set_pin_path: 'int bpf_map__set_pin_path(bpf_map *map, const char *path)',
  };
  const b: Binding = {};
  for (const [key, proto] of Object.entries(decls)) b[key] = lib.func(proto) as Fn;

  const vsnprintf = libc.func('int vsnprintf(void *buf, size_t size, const char *fmt, void *args)') as Fn;
  const text = Buffer.alloc(8192);
  printCallback = koffi.register(
    (level: number, fmt: string, args: unknown) => {
      const n = vsnprintf(text, text.length, fmt, args) as number;
      if (n > 0) {
        logLines.push({ level, text: text.subarray(0, Math.min(n, text.length - 1)).toString('utf8') });
        if (logLines.length > MAX_LOG_LINES) logLines.splice(0, logLines.length - MAX_LOG_LINES);
      }
      return 0;
    },
    koffi.pointer('tp_libbpf_print_fn'),
  );
  b.set_print!(printCallback);
  binding = b;
  return b;
}

// ---- error convention ------------------------------------------------------

function fail(op: string, errno: number, detail = ''): never {
  throw new LibbpfError(op, errno, errnoName(errno), detail);
}

/** int-returning calls: negative = -errno. */
function checkRet(op: string, ret: unknown, detail = ''): number {
  const n = Number(ret);
  if (n < 0) fail(op, -n, detail);
  return n;
}

/** pointer-returning calls: NULL + errno. */
function checkPtr(op: string, p: unknown, detail = ''): NativePtr {
  if (p === null || p === undefined) fail(op, koffi.errno() || EINVAL, detail);
  return p as NativePtr;
}

// ---- objects, programs, maps ----------------------------------------------

export interface ProgramInfo {
  name: string;
  section: string;
  handle: NativePtr;
}

export interface MapInfo {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** A bpf_object opened from an ELF file; close() it when done. */
export class BpfObject {
  private handle: NativePtr | undefined;

  private constructor(
    readonly path: string,
    handle: NativePtr,
  ) {
    this.handle = handle;
  }

  /** Opens (parses) the ELF; PIN_BY_NAME maps will be pinned under pinRootPath on load. */
  static open(path: string, pinRootPath?: string): BpfObject {
    const b = libbpf();
    const opts = {
      sz: koffi.sizeof('tp_bpf_object_open_opts'),
      object_name: null,
      relaxed_maps: false,
      pin_root_path: pinRootPath ?? null,
      removed_attach_prog_fd: 0,
      kconfig: null,
      btf_custom_path: null,
      kernel_log_buf: null,
      kernel_log_size: 0,
      kernel_log_level: 0,
    };
    const h = checkPtr('bpf_object__open_file', b.open_file!(path, opts), path);
    return new BpfObject(path, h);
  }

  private get h(): NativePtr {
    if (!this.handle) throw new Error(`bpf object ${this.path} is closed`);
    return this.handle;
  }

  load(): void {
    checkRet('bpf_object__load', libbpf().object_load!(this.h), this.path);
  }

  close(): void {
    if (this.handle) libbpf().object_close!(this.handle);
    this.handle = undefined;
  }

  programs(): ProgramInfo[] {
    const b = libbpf();
    const out: ProgramInfo[] = [];
    for (let p = b.next_program!(this.h, null); p; p = b.next_program!(this.h, p)) {
      out.push({ name: b.program_name!(p) as string, section: b.program_section!(p) as string, handle: p as NativePtr });
    }
    return out;
  }

  maps(): MapInfo[] {
    const b = libbpf();
    const out: MapInfo[] = [];
    for (let m = b.next_map!(this.h, null); m; m = b.next_map!(this.h, m)) {
      out.push({
        name: b.map_name!(m) as string,
        type: b.map_type!(m) as number,
        keySize: b.map_key_size!(m) as number,
        valueSize: b.map_value_size!(m) as number,
        maxEntries: b.map_max_entries!(m) as number,
      });
    }
    return out;
  }

  /**
   * Sizes a map before load (bpf_map__set_max_entries): settings maps are created as
   * big as the settings need, not as the object declares.
   */
  setMaxEntries(mapName: string, maxEntries: number): void {
    const b = libbpf();
    const m = checkPtr('bpf_object__find_map_by_name', b.find_map!(this.h, mapName), `${this.path}: ${mapName}`);
    checkRet('bpf_map__set_max_entries', b.map_set_max_entries!(m, maxEntries), `${mapName} ${maxEntries}`);
  }

  /** Size in bytes of `struct <name>` as recorded in the object's BTF; undefined if absent. */
  btfStructSize(name: string): number | undefined {
    const b = libbpf();
    const btf = b.object_btf!(this.h);
    if (!btf) return undefined;
    const BTF_KIND_STRUCT = 4;
    const id = b.btf_find_by_name_kind!(btf, name, BTF_KIND_STRUCT) as number;
    if (id < 0) return undefined;
    return Number(checkRet('btf__resolve_size', b.btf_resolve_size!(btf, id), name));
  }

  /** Before load: private maps (no pin reuse, nothing pinned) of `maxEntries` each, for a throw-away load. */
  privateMaps(maxEntries = 1): void {
    const b = libbpf();
    for (let m = b.next_map!(this.h, null); m; m = b.next_map!(this.h, m)) {
      checkRet('bpf_map__set_pin_path', b.map_set_pin_path!(m, null), this.path);
      checkRet('bpf_map__set_max_entries', b.map_set_max_entries!(m, maxEntries), this.path);
    }
  }
}

export function programFd(p: ProgramInfo): number {
  return checkRet('bpf_program__fd', libbpf().program_fd!(p.handle), p.name);
}

// ---- links -----------------------------------------------------------------

/** Pins a fresh link and releases our handle: from then on the pin alone keeps the program attached. */
function pinAndRelease(link: NativePtr, pinPath: string): void {
  const b = libbpf();
  try {
    checkRet('bpf_link__pin', b.link_pin!(link, pinPath), pinPath);
  } catch (e) {
    b.link_destroy!(link); // not pinned: destroying detaches
    throw e;
  }
  // Closing our fd does not detach a pinned link.
  b.link_destroy!(link);
}

/**
 * Attaches a cgroup program with a bpf_link (BPF_F_ALLOW_MULTI semantics: other
 * programs on the same hook keep running) and pins the link at pinPath.
 */
export function attachCgroupPinned(p: ProgramInfo, cgroupFd: number, pinPath: string): void {
  pinAndRelease(checkPtr('bpf_program__attach_cgroup', libbpf().attach_cgroup!(p.handle, cgroupFd), p.name), pinPath);
}

/** Attaches a network-namespace program (sk_lookup) with a bpf_link and pins it. */
export function attachNetnsPinned(p: ProgramInfo, netnsFd: number, pinPath: string): void {
  pinAndRelease(checkPtr('bpf_program__attach_netns', libbpf().attach_netns!(p.handle, netnsFd), p.name), pinPath);
}

/** Force-detaches the link behind a pinned path (even if someone else holds an fd). */
export function detachPinnedLink(pinPath: string): void {
  const fd = objGet(pinPath);
  try {
    checkRet('bpf_link_detach', libbpf().link_detach!(fd), pinPath);
  } finally {
    closeSync(fd);
  }
}

// ---- pinned objects and raw map access --------------------------------------

export function objGet(path: string): number {
  return checkRet('bpf_obj_get', libbpf().obj_get!(path), path);
}

export function objPin(fd: number, path: string): void {
  checkRet('bpf_obj_pin', libbpf().obj_pin!(fd, path), path);
}

/**
 * The name of a loaded program (bpf_prog_info.name, 16 bytes at offset 64), or
 * undefined when no program has that id any more. Used to recognise our programs
 * by name where no record says which ids are ours (a tc filter).
 */
export function programNameById(id: number): string | undefined {
  const b = libbpf();
  const fd = Number(b.prog_get_fd_by_id!(id));
  if (fd === -ENOENT) return undefined;
  checkRet('bpf_prog_get_fd_by_id', fd, `id ${id}`);
  try {
    const info = Buffer.alloc(80);
    const len = Buffer.alloc(4);
    writeU32(len, 0, info.length);
    checkRet('bpf_obj_get_info_by_fd', b.obj_get_info_by_fd!(fd, info, len), `program ${id}`);
    const name = info.subarray(64, 80);
    const end = name.indexOf(0);
    return name.subarray(0, end < 0 ? name.length : end).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** enum bpf_map_type values tpctl creates (linux/bpf.h). */
export const BPF_MAP_TYPE = { HASH: 1, ARRAY: 2, PERCPU_ARRAY: 6, LRU_HASH: 9, LPM_TRIE: 11, SOCKMAP: 15 } as const;
export const BPF_F_NO_PREALLOC = 1;
export const BPF_ANY = 0;

/** bpf_map_create; returns the new map's fd. */
export function mapCreate(
  type: number,
  name: string,
  keySize: number,
  valueSize: number,
  maxEntries: number,
  mapFlags = 0,
): number {
  let opts: Buffer | null = null;
  if (mapFlags) {
    // struct bpf_map_create_opts (libbpf 1.1): sz@0, btf_fd@8, btf_key_type_id@12,
    // btf_value_type_id@16, btf_vmlinux_value_type_id@20, inner_map_fd@24,
    // map_flags@28, map_extra@32, numa_node@40, map_ifindex@44; sizeof 48.
    opts = Buffer.alloc(48);
    writeSizeT(opts, 0, 48);
    writeU32(opts, 28, mapFlags);
  }
  return checkRet('bpf_map_create', libbpf().map_create!(type, name, keySize, valueSize, maxEntries, opts), name);
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags = BPF_ANY): void {
  checkRet('bpf_map_update_elem', libbpf().map_update!(fd, key, value, flags));
}

/**
 * Writes many entries with one syscall per chunk (bpf_map_update_batch). Returns
 * false, having written nothing, when the map type has no batch support (LPM tries
 * on many kernels: EINVAL/ENOTSUPP), so the caller can fall back to single updates.
 */
export function mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number): boolean {
  // struct bpf_map_batch_opts (libbpf 1.1): sz@0 elem_flags@8 flags@16; sizeof 24.
  const opts = Buffer.alloc(24);
  writeSizeT(opts, 0, 24);
  const n = new Uint32Array([count]);
  const r = Number(libbpf().map_update_batch!(fd, keys, values, n, opts));
  if (r === -EINVAL || r === -ENOTSUPP || r === -osConstants.errno.EOPNOTSUPP) {
    if (n[0] === 0) return false;
  }
  checkRet('bpf_map_update_batch', r, `${n[0]} of ${count} written`);
  return true;
}

export interface PinnedMapInfo {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

/** What the kernel says about a map fd (struct bpf_map_info: type@0 id@4 key_size@8 value_size@12 max_entries@16 map_flags@20). */
export function mapInfo(fd: number): PinnedMapInfo {
  const info = Buffer.alloc(256);
  const len = new Uint32Array([info.length]);
  checkRet('bpf_obj_get_info_by_fd', libbpf().obj_get_info!(fd, info, len));
  return { type: readU32(info, 0), keySize: readU32(info, 8), valueSize: readU32(info, 12), maxEntries: readU32(info, 16), flags: readU32(info, 20) };
}

/** The value for key, or undefined when absent. */
export function mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | undefined {
  const value = Buffer.alloc(valueSize);
  const r = Number(libbpf().map_lookup!(fd, key, value));
  if (r === -ENOENT) return undefined;
  checkRet('bpf_map_lookup_elem', r);
  return value;
}

/** True when the key was there. */
export function mapDelete(fd: number, key: Buffer): boolean {
  const r = Number(libbpf().map_delete!(fd, key));
  if (r === -ENOENT) return false;
  checkRet('bpf_map_delete_elem', r);
  return true;
}

/** Every key currently in the map (collected first, so callers may delete while walking). */
export function mapKeys(fd: number, keySize: number, limit = 1 << 20): Buffer[] {
  const b = libbpf();
  const keys: Buffer[] = [];
  let prev: Buffer | null = null;
  for (let i = 0; i < limit; i++) {
    const next = Buffer.alloc(keySize);
    const r = Number(b.map_next_key!(fd, prev, next));
    if (r === -ENOENT) break;
    checkRet('bpf_map_get_next_key', r);
    keys.push(next);
    prev = next;
  }
  return keys;
}

// ---- tc (clsact + direct-action filter over netlink) ------------------------

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;

function writeSizeT(buf: Buffer, off: number, v: number): void {
  if (endianness() === 'LE') buf.writeBigUInt64LE(BigInt(v), off);
  else buf.writeBigUInt64BE(BigInt(v), off);
}
function writeU32(buf: Buffer, off: number, v: number): void {
  if (endianness() === 'LE') buf.writeUInt32LE(v >>> 0, off);
  else buf.writeUInt32BE(v >>> 0, off);
}
function readU32(buf: Buffer, off: number): number {
  return endianness() === 'LE' ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
}

/** struct bpf_tc_hook: sz@0 ifindex@8 attach_point@12 parent@16; sizeof 24. */
function tcHook(ifindex: number, attachPoint: number): Buffer {
  const h = Buffer.alloc(24);
  writeSizeT(h, 0, 24);
  writeU32(h, 8, ifindex);
  writeU32(h, 12, attachPoint);
  return h;
}

/** struct bpf_tc_opts: sz@0 prog_fd@8 flags@12 prog_id@16 handle@20 priority@24; sizeof 32. */
function tcOpts(handle: number, priority: number, progFd = 0): Buffer {
  const o = Buffer.alloc(32);
  writeSizeT(o, 0, 32);
  writeU32(o, 8, progFd);
  writeU32(o, 20, handle);
  writeU32(o, 24, priority);
  return o;
}

/** Creates the clsact qdisc; returns false when one already existed (not ours). */
export function tcHookCreate(ifindex: number): boolean {
  const r = Number(libbpf().tc_hook_create!(tcHook(ifindex, BPF_TC_INGRESS)));
  if (r === -EEXIST) return false;
  checkRet('bpf_tc_hook_create', r, `ifindex ${ifindex}`);
  return true;
}

/** Deletes the whole clsact qdisc (ingress and egress) of the interface. */
export function tcHookDestroy(ifindex: number): void {
  checkRet('bpf_tc_hook_destroy', libbpf().tc_hook_destroy!(tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS)), `ifindex ${ifindex}`);
}

/** Adds our ingress filter at (handle, priority); returns the attached program id. */
export function tcAttachIngress(ifindex: number, progFd: number, handle: number, priority: number): number {
  const opts = tcOpts(handle, priority, progFd);
  checkRet('bpf_tc_attach', libbpf().tc_attach!(tcHook(ifindex, BPF_TC_INGRESS), opts), `ifindex ${ifindex}`);
  return readU32(opts, 16);
}

/** Program id of the ingress filter at (handle, priority), or undefined when there is none. */
export function tcQueryIngress(ifindex: number, handle: number, priority: number): number | undefined {
  const opts = tcOpts(handle, priority);
  const r = Number(libbpf().tc_query!(tcHook(ifindex, BPF_TC_INGRESS), opts));
  if (r === -ENOENT || r === -ENODEV || r === -EINVAL) return undefined;
  checkRet('bpf_tc_query', r, `ifindex ${ifindex}`);
  return readU32(opts, 16);
}

export function tcDetachIngress(ifindex: number, handle: number, priority: number): void {
  checkRet('bpf_tc_detach', libbpf().tc_detach!(tcHook(ifindex, BPF_TC_INGRESS), tcOpts(handle, priority)), `ifindex ${ifindex}`);
}

// ---- object identities (status) ---------------------------------------------

/** bpf_obj_get_info_by_fd into a zeroed buffer (the kernel accepts a longer, zero-tailed one). */
export function objInfo(fd: number, size = 256): Buffer {
  const info = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  writeU32(len, 0, size);
  checkRet('bpf_obj_get_info_by_fd', libbpf().obj_get_info!(fd, info, len), `fd ${fd}`);
  return info;
}

/** struct bpf_prog_info: id@4, tag[8]@8, name[16]@64. */
export function progIdentity(fd: number): { id: number; tag: string; name: string } {
  const info = objInfo(fd);
  const name = info.subarray(64, 80);
  const end = name.indexOf(0);
  return { id: readU32(info, 4), tag: info.subarray(8, 16).toString('hex'), name: name.subarray(0, end < 0 ? 16 : end).toString('utf8') };
}

/** enum bpf_link_type values status tells apart. */
export const BPF_LINK_TYPE = { CGROUP: 3, NETNS: 5 } as const;

/**
 * struct bpf_link_info: type@0, id@4, prog_id@8, then a union at 16: cgroup.cgroup_id
 * (u64, 0 once detached) and cgroup.attach_type@24, or netns.netns_ino (u32, 0 once
 * detached or the namespace is gone) and netns.attach_type@20.
 */
export interface LinkIdentity {
  type: number;
  id: number;
  progId: number;
  /** cgroup links: inode of the cgroup directory. */
  cgroupId: bigint;
  /** netns links: inode of the network namespace (as in /proc/PID/ns/net). */
  netnsIno: number;
}

export function linkIdentity(fd: number): LinkIdentity {
  const info = objInfo(fd);
  const cgroupId = endianness() === 'LE' ? info.readBigUInt64LE(16) : info.readBigUInt64BE(16);
  return { type: readU32(info, 0), id: readU32(info, 4), progId: readU32(info, 8), cgroupId, netnsIno: readU32(info, 16) };
}

export function progFdById(id: number): number {
  return checkRet('bpf_prog_get_fd_by_id', libbpf().prog_fd_by_id!(id), `id ${id}`);
}
