/**
 * The libbpf binding: the C prototypes of exactly the libbpf 1.1 calls tpctl uses,
 * declared through koffi on first use (src/ffi.ts holds the only koffi.load), typed
 * for TypeScript (LibbpfCalls), and thin wrappers that turn libbpf's error
 * convention into LibbpfError.
 *
 * libbpf 1.x convention: int-returning calls return -errno (and set errno);
 * pointer-returning calls return NULL and set errno.
 *
 * Every struct passed by pointer is a koffi.struct copied from its C declaration
 * (libbpf.h, bpf.h, linux/bpf.h): koffi lays it out like the C compiler does, so no
 * offset is written down here. The kernel's *_info structs are declared up to the
 * last member tpctl reads; the kernel fills only the length it is given.
 */
import { closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
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

/** struct bpf_object_open_opts (libbpf 1.1). */
interface ObjectOpenOpts {
  sz: number;
  object_name: string | null;
  relaxed_maps: boolean;
  pin_root_path: string | null;
  kconfig: string | null;
  btf_custom_path: string | null;
  kernel_log_buf: null;
  kernel_log_size: number;
  kernel_log_level: number;
}

/** struct bpf_tc_hook. */
interface TcHook {
  sz: number;
  ifindex: number;
  attach_point: number;
  parent: number;
}

/** struct bpf_tc_opts (prog_id is filled in by bpf_tc_attach / bpf_tc_query). */
interface TcOpts {
  sz: number;
  prog_fd: number;
  flags: number;
  prog_id: number;
  handle: number;
  priority: number;
}

/** struct bpf_map_create_opts. */
interface MapCreateOpts {
  sz: number;
  map_flags: number;
}

/** struct bpf_map_batch_opts. */
interface MapBatchOpts {
  sz: number;
  elem_flags: number;
  flags: number;
}

/** struct bpf_prog_info, up to name. */
interface ProgInfoStruct {
  type: number;
  id: number;
  tag: Uint8Array;
  name: string;
}

/** struct bpf_map_info, up to map_flags. */
interface MapInfoStruct {
  type: number;
  id: number;
  key_size: number;
  value_size: number;
  max_entries: number;
  map_flags: number;
}

/** struct bpf_link_info: the common head; the union is read as cgroup or netns. */
interface LinkInfoStruct {
  type: number;
  id: number;
  prog_id: number;
}

/** Every libbpf call tpctl makes, as TypeScript sees it (prototypes in PROTOTYPES). */
interface LibbpfCalls {
  bpf_object__open_file(path: string, opts: ObjectOpenOpts): NativePtr | null;
  bpf_object__load(obj: NativePtr): number;
  bpf_object__close(obj: NativePtr): void;
  bpf_object__next_program(obj: NativePtr, prog: NativePtr | null): NativePtr | null;
  bpf_object__next_map(obj: NativePtr, map: NativePtr | null): NativePtr | null;
  bpf_object__find_map_by_name(obj: NativePtr, name: string): NativePtr | null;
  bpf_program__name(prog: NativePtr): string;
  bpf_program__section_name(prog: NativePtr): string;
  bpf_program__fd(prog: NativePtr): number;
  bpf_program__set_autoload(prog: NativePtr, autoload: boolean): number;
  libbpf_probe_bpf_helper(progType: number, helperId: number, opts: null): number;
  bpf_program__attach_cgroup(prog: NativePtr, cgroupFd: number): NativePtr | null;
  bpf_program__attach_netns(prog: NativePtr, netnsFd: number): NativePtr | null;
  bpf_map__name(map: NativePtr): string;
  bpf_map__type(map: NativePtr): number;
  bpf_map__key_size(map: NativePtr): number;
  bpf_map__value_size(map: NativePtr): number;
  bpf_map__max_entries(map: NativePtr): number;
  bpf_map__set_max_entries(map: NativePtr, maxEntries: number): number;
  bpf_map__set_pin_path(map: NativePtr, path: string | null): number;
  bpf_link__pin(link: NativePtr, path: string): number;
  bpf_link__destroy(link: NativePtr): number;
  bpf_link_detach(linkFd: number): number;
  bpf_obj_get(path: string): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, infoLen: number[]): number;
  bpf_map_create(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, opts: MapCreateOpts | null): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: number): number;
  bpf_map_update_batch(fd: number, keys: Buffer, values: Buffer, count: number[], opts: MapBatchOpts): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, nextKey: Buffer): number;
  bpf_tc_hook_create(hook: TcHook): number;
  bpf_tc_hook_destroy(hook: TcHook): number;
  bpf_tc_attach(hook: TcHook, opts: TcOpts): number;
  bpf_tc_detach(hook: TcHook, opts: TcOpts): number;
  bpf_tc_query(hook: TcHook, opts: TcOpts): number;
  libbpf_set_print(fn: unknown): unknown;
}

/** The C prototype of each call, in koffi's syntax (tp_* are the structs declared below). */
const PROTOTYPES: Record<keyof LibbpfCalls, string> = {
  bpf_object__open_file: 'bpf_object *bpf_object__open_file(const char *path, const tp_bpf_object_open_opts *opts)',
  bpf_object__load: 'int bpf_object__load(bpf_object *obj)',
  bpf_object__close: 'void bpf_object__close(bpf_object *obj)',
  bpf_object__next_program: 'bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prog)',
  bpf_object__next_map: 'bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)',
  bpf_object__find_map_by_name: 'bpf_map *bpf_object__find_map_by_name(const bpf_object *obj, const char *name)',
  bpf_program__name: 'const char *bpf_program__name(const bpf_program *prog)',
  bpf_program__section_name: 'const char *bpf_program__section_name(const bpf_program *prog)',
  bpf_program__fd: 'int bpf_program__fd(const bpf_program *prog)',
  bpf_program__set_autoload: 'int bpf_program__set_autoload(bpf_program *prog, bool autoload)',
  libbpf_probe_bpf_helper: 'int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts)',
  bpf_program__attach_cgroup: 'bpf_link *bpf_program__attach_cgroup(const bpf_program *prog, int cgroup_fd)',
  bpf_program__attach_netns: 'bpf_link *bpf_program__attach_netns(const bpf_program *prog, int netns_fd)',
  bpf_map__name: 'const char *bpf_map__name(const bpf_map *map)',
  bpf_map__type: 'int bpf_map__type(const bpf_map *map)',
  bpf_map__key_size: 'uint32_t bpf_map__key_size(const bpf_map *map)',
  bpf_map__value_size: 'uint32_t bpf_map__value_size(const bpf_map *map)',
  bpf_map__max_entries: 'uint32_t bpf_map__max_entries(const bpf_map *map)',
  bpf_map__set_max_entries: 'int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)',
  bpf_map__set_pin_path: 'int bpf_map__set_pin_path(bpf_map *map, const char *path)',
  bpf_link__pin: 'int bpf_link__pin(bpf_link *link, const char *path)',
  bpf_link__destroy: 'int bpf_link__destroy(bpf_link *link)',
  bpf_link_detach: 'int bpf_link_detach(int link_fd)',
  bpf_obj_get: 'int bpf_obj_get(const char *pathname)',
  bpf_obj_pin: 'int bpf_obj_pin(int fd, const char *pathname)',
  bpf_prog_get_fd_by_id: 'int bpf_prog_get_fd_by_id(uint32_t id)',
  bpf_obj_get_info_by_fd: 'int bpf_obj_get_info_by_fd(int bpf_fd, void *info, _Inout_ uint32_t *info_len)',
  bpf_map_create:
    'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const tp_bpf_map_create_opts *opts)',
  bpf_map_update_elem: 'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)',
  bpf_map_update_batch:
    'int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const tp_bpf_map_batch_opts *opts)',
  bpf_map_lookup_elem: 'int bpf_map_lookup_elem(int fd, const void *key, void *value)',
  bpf_map_delete_elem: 'int bpf_map_delete_elem(int fd, const void *key)',
  bpf_map_get_next_key: 'int bpf_map_get_next_key(int fd, const void *key, void *next_key)',
  bpf_tc_hook_create: 'int bpf_tc_hook_create(tp_bpf_tc_hook *hook)',
  bpf_tc_hook_destroy: 'int bpf_tc_hook_destroy(tp_bpf_tc_hook *hook)',
  bpf_tc_attach: 'int bpf_tc_attach(const tp_bpf_tc_hook *hook, _Inout_ tp_bpf_tc_opts *opts)',
  bpf_tc_detach: 'int bpf_tc_detach(const tp_bpf_tc_hook *hook, const tp_bpf_tc_opts *opts)',
  bpf_tc_query: 'int bpf_tc_query(const tp_bpf_tc_hook *hook, _Inout_ tp_bpf_tc_opts *opts)',
  libbpf_set_print: 'void *libbpf_set_print(tp_libbpf_print_fn *fn)',
};

/** koffi type names of the structs, for koffi.sizeof / koffi.decode. */
const STRUCT = {
  objectOpenOpts: 'tp_bpf_object_open_opts',
  tcHook: 'tp_bpf_tc_hook',
  tcOpts: 'tp_bpf_tc_opts',
  mapCreateOpts: 'tp_bpf_map_create_opts',
  mapBatchOpts: 'tp_bpf_map_batch_opts',
  progInfo: 'tp_bpf_prog_info',
  mapInfo: 'tp_bpf_map_info',
  linkInfo: 'tp_bpf_link_info',
  linkInfoCgroup: 'tp_bpf_link_info_cgroup',
  linkInfoNetns: 'tp_bpf_link_info_netns',
} as const;

/**
 * C struct name → the koffi type declared for it. test/ebpf/libbpf-structs.test.ts
 * compiles the C headers and compares each layout, member by member, with koffi's.
 */
export const C_STRUCTS = {
  bpf_object_open_opts: STRUCT.objectOpenOpts,
  bpf_tc_hook: STRUCT.tcHook,
  bpf_tc_opts: STRUCT.tcOpts,
  bpf_map_create_opts: STRUCT.mapCreateOpts,
  bpf_map_batch_opts: STRUCT.mapBatchOpts,
  bpf_prog_info: STRUCT.progInfo,
  bpf_map_info: STRUCT.mapInfo,
  bpf_link_info: STRUCT.linkInfo,
} as const;

let structsDeclared = false;

/** The struct declarations, member for member as in the C headers (koffi refuses a name twice). */
export function declareStructs(): void {
  if (structsDeclared) return;
  structsDeclared = true;
  koffi.opaque('bpf_object');
  koffi.opaque('bpf_program');
  koffi.opaque('bpf_map');
  koffi.opaque('bpf_link');
  koffi.struct(STRUCT.objectOpenOpts, {
    sz: 'size_t',
    object_name: 'const char *',
    relaxed_maps: 'bool',
    pin_root_path: 'const char *',
    attach_prog_fd: 'uint32_t', // removed in libbpf 1.0, the slot stays
    kconfig: 'const char *',
    btf_custom_path: 'const char *',
    kernel_log_buf: 'char *',
    kernel_log_size: 'size_t',
    kernel_log_level: 'uint32_t',
  });
  koffi.struct(STRUCT.tcHook, { sz: 'size_t', ifindex: 'int', attach_point: 'int', parent: 'uint32_t' });
  koffi.struct(STRUCT.tcOpts, {
    sz: 'size_t',
    prog_fd: 'int',
    flags: 'uint32_t',
    prog_id: 'uint32_t',
    handle: 'uint32_t',
    priority: 'uint32_t',
  });
  koffi.struct(STRUCT.mapCreateOpts, {
    sz: 'size_t',
    btf_fd: 'uint32_t',
    btf_key_type_id: 'uint32_t',
    btf_value_type_id: 'uint32_t',
    btf_vmlinux_value_type_id: 'uint32_t',
    inner_map_fd: 'uint32_t',
    map_flags: 'uint32_t',
    map_extra: 'uint64_t',
    numa_node: 'uint32_t',
    map_ifindex: 'uint32_t',
  });
  koffi.struct(STRUCT.mapBatchOpts, { sz: 'size_t', elem_flags: 'uint64_t', flags: 'uint64_t' });
  koffi.struct(STRUCT.progInfo, {
    type: 'uint32_t',
    id: 'uint32_t',
    tag: 'uint8_t[8]',
    jited_prog_len: 'uint32_t',
    xlated_prog_len: 'uint32_t',
    jited_prog_insns: 'uint64_t',
    xlated_prog_insns: 'uint64_t',
    load_time: 'uint64_t',
    created_by_uid: 'uint32_t',
    nr_map_ids: 'uint32_t',
    map_ids: 'uint64_t',
    name: 'char[16]',
  });
  koffi.struct(STRUCT.mapInfo, {
    type: 'uint32_t',
    id: 'uint32_t',
    key_size: 'uint32_t',
    value_size: 'uint32_t',
    max_entries: 'uint32_t',
    map_flags: 'uint32_t',
  });
  koffi.struct(STRUCT.linkInfoCgroup, { cgroup_id: 'uint64_t', attach_type: 'uint32_t' });
  koffi.struct(STRUCT.linkInfoNetns, { netns_ino: 'uint32_t', attach_type: 'uint32_t' });
  koffi.struct(STRUCT.linkInfo, {
    type: 'uint32_t',
    id: 'uint32_t',
    prog_id: 'uint32_t',
    u: koffi.union({ cgroup: STRUCT.linkInfoCgroup, netns: STRUCT.linkInfoNetns }),
  });
  // libbpf_print_fn_t takes a va_list; on LP64 ABIs it is passed as a pointer, which
  // vsnprintf accepts directly.
  koffi.proto('int tp_libbpf_print_fn(int level, const char *fmt, void *args)');
}

let binding: LibbpfCalls | undefined;
// The registered print callback must stay alive for the whole process: libbpf keeps
// the pointer in a global.
let printCallback: unknown;

/** Load libbpf.so.1 and declare the functions. Throws PreflightError when it is missing. */
export function libbpf(): LibbpfCalls {
  if (binding) return binding;
  const lib = loadLibrary('libbpf.so.1');
  const libc = loadLibrary('libc.so.6');
  declareStructs();
  const calls = Object.fromEntries(Object.entries(PROTOTYPES).map(([name, proto]) => [name, lib.func(proto)])) as unknown as LibbpfCalls;

  const vsnprintf = libc.func('int vsnprintf(void *buf, size_t size, const char *fmt, void *args)') as (
    buf: Buffer,
    size: number,
    fmt: string,
    args: unknown,
  ) => number;
  const text = Buffer.alloc(8192);
  printCallback = koffi.register(
    (level: number, fmt: string, args: unknown) => {
      const n = vsnprintf(text, text.length, fmt, args);
      if (n > 0) {
        logLines.push({ level, text: text.subarray(0, Math.min(n, text.length - 1)).toString('utf8') });
        if (logLines.length > MAX_LOG_LINES) logLines.splice(0, logLines.length - MAX_LOG_LINES);
      }
      return 0;
    },
    koffi.pointer('tp_libbpf_print_fn'),
  );
  calls.libbpf_set_print(printCallback);
  binding = calls;
  return calls;
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
    const opts: ObjectOpenOpts = {
      sz: koffi.sizeof(STRUCT.objectOpenOpts),
      object_name: null,
      relaxed_maps: false,
      pin_root_path: pinRootPath ?? null,
      kconfig: null,
      btf_custom_path: null,
      kernel_log_buf: null,
      kernel_log_size: 0,
      kernel_log_level: 0,
    };
    return new BpfObject(path, checkPtr('bpf_object__open_file', b.bpf_object__open_file(path, opts), path));
  }

  private get h(): NativePtr {
    if (!this.handle) throw new Error(`bpf object ${this.path} is closed`);
    return this.handle;
  }

  load(): void {
    checkRet('bpf_object__load', libbpf().bpf_object__load(this.h), this.path);
  }

  close(): void {
    if (this.handle) libbpf().bpf_object__close(this.handle);
    this.handle = undefined;
  }

  programs(): ProgramInfo[] {
    const b = libbpf();
    const out: ProgramInfo[] = [];
    for (let p = b.bpf_object__next_program(this.h, null); p; p = b.bpf_object__next_program(this.h, p)) {
      out.push({ name: b.bpf_program__name(p), section: b.bpf_program__section_name(p), handle: p });
    }
    return out;
  }

  private mapHandles(): NativePtr[] {
    const b = libbpf();
    const out: NativePtr[] = [];
    for (let m = b.bpf_object__next_map(this.h, null); m; m = b.bpf_object__next_map(this.h, m)) out.push(m);
    return out;
  }

  maps(): MapInfo[] {
    const b = libbpf();
    return this.mapHandles().map((m) => ({
      name: b.bpf_map__name(m),
      type: b.bpf_map__type(m),
      keySize: b.bpf_map__key_size(m),
      valueSize: b.bpf_map__value_size(m),
      maxEntries: b.bpf_map__max_entries(m),
    }));
  }

  /**
   * Sizes a map before load (bpf_map__set_max_entries): settings maps are created as
   * big as the settings need, not as the object declares.
   */
  setMaxEntries(mapName: string, maxEntries: number): void {
    const b = libbpf();
    const m = checkPtr('bpf_object__find_map_by_name', b.bpf_object__find_map_by_name(this.h, mapName), `${this.path}: ${mapName}`);
    checkRet('bpf_map__set_max_entries', b.bpf_map__set_max_entries(m, maxEntries), `${mapName} ${maxEntries}`);
  }

  /** Before load: leaves the named programs out of the load (their kernel may lack what they use). */
  skipPrograms(names: ReadonlySet<string>): void {
    for (const p of this.programs()) {
      if (names.has(p.name)) checkRet('bpf_program__set_autoload', libbpf().bpf_program__set_autoload(p.handle, false), p.name);
    }
  }

  /** Before load: private maps (no pin reuse, nothing pinned) of `maxEntries` each, for a throw-away load. */
  privateMaps(maxEntries = 1): void {
    const b = libbpf();
    for (const m of this.mapHandles()) {
      checkRet('bpf_map__set_pin_path', b.bpf_map__set_pin_path(m, null), this.path);
      checkRet('bpf_map__set_max_entries', b.bpf_map__set_max_entries(m, maxEntries), this.path);
    }
  }
}

export function programFd(p: ProgramInfo): number {
  return checkRet('bpf_program__fd', libbpf().bpf_program__fd(p.handle), p.name);
}

// ---- links -----------------------------------------------------------------

/** Pins a fresh link and releases our handle: from then on the pin alone keeps the program attached. */
function pinAndRelease(link: NativePtr, pinPath: string): void {
  const b = libbpf();
  try {
    checkRet('bpf_link__pin', b.bpf_link__pin(link, pinPath), pinPath);
  } catch (e) {
    b.bpf_link__destroy(link); // not pinned: destroying detaches
    throw e;
  }
  // Closing our fd does not detach a pinned link.
  b.bpf_link__destroy(link);
}

/**
 * Attaches a cgroup program with a bpf_link (BPF_F_ALLOW_MULTI semantics: other
 * programs on the same hook keep running) and pins the link at pinPath.
 */
export function attachCgroupPinned(p: ProgramInfo, cgroupFd: number, pinPath: string): void {
  pinAndRelease(checkPtr('bpf_program__attach_cgroup', libbpf().bpf_program__attach_cgroup(p.handle, cgroupFd), p.name), pinPath);
}

/** Attaches a network-namespace program (sk_lookup) with a bpf_link and pins it. */
export function attachNetnsPinned(p: ProgramInfo, netnsFd: number, pinPath: string): void {
  pinAndRelease(checkPtr('bpf_program__attach_netns', libbpf().bpf_program__attach_netns(p.handle, netnsFd), p.name), pinPath);
}

/** Force-detaches the link behind a pinned path (even if someone else holds an fd). */
export function detachPinnedLink(pinPath: string): void {
  const fd = objGet(pinPath);
  try {
    checkRet('bpf_link_detach', libbpf().bpf_link_detach(fd), pinPath);
  } finally {
    closeSync(fd);
  }
}

// ---- pinned objects and raw map access --------------------------------------

export function objGet(path: string): number {
  return checkRet('bpf_obj_get', libbpf().bpf_obj_get(path), path);
}

export function objPin(fd: number, path: string): void {
  checkRet('bpf_obj_pin', libbpf().bpf_obj_pin(fd, path), path);
}

/** enum bpf_map_type values tpctl creates (linux/bpf.h). */
export const BPF_MAP_TYPE = { HASH: 1, ARRAY: 2, PERCPU_ARRAY: 6, LRU_HASH: 9, LPM_TRIE: 11, SOCKMAP: 15 } as const;
export const BPF_F_NO_PREALLOC = 1;
export const BPF_PROG_TYPE = { SOCK_OPS: 13 } as const;
/** Helper ids (enum bpf_func_id in <linux/bpf.h>). */
export const BPF_FUNC = { get_netns_cookie: 122, skc_to_tcp_sock: 137 } as const;

/** Whether programs of `progType` may call helper `helperId` on this kernel (libbpf_probe_bpf_helper). */
export function probeHelper(progType: number, helperId: number): boolean {
  const r = libbpf().libbpf_probe_bpf_helper(progType, helperId, null);
  if (r < 0) throw new LibbpfError('libbpf_probe_bpf_helper', -r, errnoName(-r), `program type ${progType}, helper ${helperId}`);
  return r === 1;
}
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
  const opts: MapCreateOpts | null = mapFlags ? { sz: koffi.sizeof(STRUCT.mapCreateOpts), map_flags: mapFlags } : null;
  return checkRet('bpf_map_create', libbpf().bpf_map_create(type, name, keySize, valueSize, maxEntries, opts), name);
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags = BPF_ANY): void {
  checkRet('bpf_map_update_elem', libbpf().bpf_map_update_elem(fd, key, value, flags));
}

/**
 * Writes many entries with one syscall per chunk (bpf_map_update_batch). Returns
 * false, having written nothing, when the map type has no batch support (LPM tries
 * on many kernels: EINVAL/ENOTSUPP), so the caller can fall back to single updates.
 */
export function mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number): boolean {
  const opts: MapBatchOpts = { sz: koffi.sizeof(STRUCT.mapBatchOpts), elem_flags: 0, flags: 0 };
  const n = [count];
  const r = libbpf().bpf_map_update_batch(fd, keys, values, n, opts);
  // No batch op for the map type: the kernel returns before it touches count, which
  // then still says `count` (seen on 5.10 for LPM tries), so nothing was written.
  if (r === -ENOTSUPP || r === -osConstants.errno.EOPNOTSUPP) return false;
  if (r === -EINVAL && n[0] === 0) return false;
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

/** What the kernel says about a map fd (struct bpf_map_info). */
export function mapInfo(fd: number): PinnedMapInfo {
  const info = objInfo<MapInfoStruct>(fd, STRUCT.mapInfo);
  return { type: info.type, keySize: info.key_size, valueSize: info.value_size, maxEntries: info.max_entries, flags: info.map_flags };
}

/** The value for key, or undefined when absent. */
export function mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | undefined {
  const value = Buffer.alloc(valueSize);
  const r = libbpf().bpf_map_lookup_elem(fd, key, value);
  if (r === -ENOENT) return undefined;
  checkRet('bpf_map_lookup_elem', r);
  return value;
}

/** True when the key was there. */
export function mapDelete(fd: number, key: Buffer): boolean {
  const r = libbpf().bpf_map_delete_elem(fd, key);
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
    const r = b.bpf_map_get_next_key(fd, prev, next);
    if (r === -ENOENT) break;
    checkRet('bpf_map_get_next_key', r);
    keys.push(next);
    prev = next;
  }
  return keys;
}

// ---- tc (clsact + direct-action filter over netlink) ------------------------

/** enum bpf_tc_attach_point. */
const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;

function tcHook(ifindex: number, attachPoint: number): TcHook {
  return { sz: koffi.sizeof(STRUCT.tcHook), ifindex, attach_point: attachPoint, parent: 0 };
}

function tcOpts(handle: number, priority: number, progFd = 0): TcOpts {
  return { sz: koffi.sizeof(STRUCT.tcOpts), prog_fd: progFd, flags: 0, prog_id: 0, handle, priority };
}

/** Creates the clsact qdisc; returns false when one already existed (not ours). */
export function tcHookCreate(ifindex: number): boolean {
  const r = libbpf().bpf_tc_hook_create(tcHook(ifindex, BPF_TC_INGRESS));
  if (r === -EEXIST) return false;
  checkRet('bpf_tc_hook_create', r, `ifindex ${ifindex}`);
  return true;
}

/** Deletes the whole clsact qdisc (ingress and egress) of the interface. */
export function tcHookDestroy(ifindex: number): void {
  checkRet('bpf_tc_hook_destroy', libbpf().bpf_tc_hook_destroy(tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS)), `ifindex ${ifindex}`);
}

/** Adds our ingress filter at (handle, priority); returns the attached program id. */
export function tcAttachIngress(ifindex: number, progFd: number, handle: number, priority: number): number {
  const opts = tcOpts(handle, priority, progFd);
  checkRet('bpf_tc_attach', libbpf().bpf_tc_attach(tcHook(ifindex, BPF_TC_INGRESS), opts), `ifindex ${ifindex}`);
  return opts.prog_id;
}

/** Program id of the ingress filter at (handle, priority), or undefined when there is none. */
export function tcQueryIngress(ifindex: number, handle: number, priority: number): number | undefined {
  const opts = tcOpts(handle, priority);
  const r = libbpf().bpf_tc_query(tcHook(ifindex, BPF_TC_INGRESS), opts);
  if (r === -ENOENT || r === -ENODEV || r === -EINVAL) return undefined;
  checkRet('bpf_tc_query', r, `ifindex ${ifindex}`);
  return opts.prog_id;
}

export function tcDetachIngress(ifindex: number, handle: number, priority: number): void {
  checkRet('bpf_tc_detach', libbpf().bpf_tc_detach(tcHook(ifindex, BPF_TC_INGRESS), tcOpts(handle, priority)), `ifindex ${ifindex}`);
}

// ---- object identities (status) ---------------------------------------------

/** bpf_obj_get_info_by_fd into a zeroed `struct` buffer, decoded; returns the buffer too for unions. */
function objInfoRaw(fd: number, struct: string): Buffer {
  const info = Buffer.alloc(koffi.sizeof(struct));
  checkRet('bpf_obj_get_info_by_fd', libbpf().bpf_obj_get_info_by_fd(fd, info, [info.length]), `fd ${fd}`);
  return info;
}

function objInfo<T>(fd: number, struct: string): T {
  return koffi.decode(objInfoRaw(fd, struct), struct) as T;
}

/** The id, tag (hex) and name of a loaded program (struct bpf_prog_info). */
export function progIdentity(fd: number): { id: number; tag: string; name: string } {
  const info = objInfo<ProgInfoStruct>(fd, STRUCT.progInfo);
  return { id: info.id, tag: Buffer.from(info.tag).toString('hex'), name: info.name };
}

/**
 * The name of a loaded program, or undefined when no program has that id any more.
 * Used to recognise our programs by name where no record says which ids are ours (a tc filter).
 */
export function programNameById(id: number): string | undefined {
  const fd = libbpf().bpf_prog_get_fd_by_id(id);
  if (fd === -ENOENT) return undefined;
  checkRet('bpf_prog_get_fd_by_id', fd, `id ${id}`);
  try {
    return progIdentity(fd).name;
  } finally {
    closeSync(fd);
  }
}

/** enum bpf_link_type values status tells apart. */
export const BPF_LINK_TYPE = { CGROUP: 3, NETNS: 5 } as const;

/** What struct bpf_link_info says about a link. */
export interface LinkIdentity {
  type: number;
  id: number;
  progId: number;
  /** cgroup links: inode of the cgroup directory (0 once detached). */
  cgroupId: bigint;
  /** netns links: inode of the network namespace, as in /proc/PID/ns/net (0 once detached or the namespace is gone). */
  netnsIno: number;
}

export function linkIdentity(fd: number): LinkIdentity {
  const raw = objInfoRaw(fd, STRUCT.linkInfo);
  const head = koffi.decode(raw, STRUCT.linkInfo) as LinkInfoStruct;
  // The union holds one of its members; which one depends on head.type. Both views are
  // read and the caller picks by type.
  const at = koffi.offsetof(STRUCT.linkInfo, 'u');
  const cgroup = koffi.decode(raw, at, STRUCT.linkInfoCgroup) as { cgroup_id: number | bigint };
  const netns = koffi.decode(raw, at, STRUCT.linkInfoNetns) as { netns_ino: number };
  return { type: head.type, id: head.id, progId: head.prog_id, cgroupId: BigInt(cgroup.cgroup_id), netnsIno: netns.netns_ino };
}

export function progFdById(id: number): number {
  return checkRet('bpf_prog_get_fd_by_id', libbpf().bpf_prog_get_fd_by_id(id), `id ${id}`);
}
