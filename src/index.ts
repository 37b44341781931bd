/** tpctl as a library: re-exports only (no side effects at import). */
export { install, installResolved, renderDryRun, type CommandOptions, type CommandResult } from './commands/install.js';
export { uninstall, uninstallResolved } from './commands/uninstall.js';
export { resolveConfig, resolveUninstallConfig, type HostLookups, type ResolveInput, type Resolved } from './config/resolve.js';
export { systemHostLookups } from './host/lookups.js';
export { loadConfigFiles, parseConfigText, type ConfigReaders } from './config/load.js';
export { configFileSchema, rawFlagsSchema, type ConfigFile, type ConfigFileInput, type RawFlags, type RawUninstallFlags } from './config/schema.js';
export { DEFAULTS } from './config/defaults.js';
export * from './config/types.js';
export * from './errors.js';
export type { EngineResult } from './engine.js';
