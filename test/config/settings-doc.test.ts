/** README.md's settings tables are what src/config/settings.ts renders (node scripts/gen-settings-doc.mjs rewrites them). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOC_BEGIN, DOC_END, renderSettingsDoc, withSettingsDoc } from '../../src/config/settings-doc.js';
import { SETTING_IDS, settingOf } from '../../src/config/settings.js';
import { REPO_ROOT } from '../fixtures/dist.js';

describe('README settings tables', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

  it('are up to date (run make build && node scripts/gen-settings-doc.mjs)', () => {
    expect(readme.indexOf(DOC_BEGIN)).toBeGreaterThan(0);
    expect(withSettingsDoc(readme) === readme, 'README.md is stale: run make build && node scripts/gen-settings-doc.mjs').toBe(true);
  });

  it('name every flag, config key, environment variable and annotation of the table', () => {
    const doc = renderSettingsDoc();
    expect(doc.startsWith(DOC_BEGIN) && doc.endsWith(DOC_END)).toBe(true);
    for (const id of SETTING_IDS) {
      const s = settingOf(id);
      const names = [s.flag?.split(' ')[0], s.key, ...(s.env ?? []), ...(s.annotations ?? []).map((a) => a.name)].filter((n): n is string => !!n);
      for (const n of names) expect(doc, `${id}: ${n}`).toContain(n);
    }
  });
});
