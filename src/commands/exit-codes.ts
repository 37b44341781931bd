/**
 * Exit codes of the read-only commands, apart from the commands themselves so the CLI
 * can name them in --help without loading the engines (README: Start-up).
 */
export const STATUS_EXIT = { healthy: 0, notInstalled: 7, drift: 8 } as const;

export const VERIFY_EXIT = { passed: 0, notInstalled: STATUS_EXIT.notInstalled, drift: STATUS_EXIT.drift, failed: 9 } as const;
