// The cloud API contract lives in the repository (test/cloud/CONTRACT.md) and
// every citation of it resolves: the path names that file, a quoted section
// names one of its `##` headings, and nothing points outside the repository.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const CONTRACT = 'test/cloud/CONTRACT.md';
// Where code, tests, packaging and docs live; node_modules and build output are not ours.
const ROOTS = ['src', 'test', 'debian', 'systemd', 'README.md', 'Makefile', '.ci'];
const SKIP = new Set(['node_modules', 'build']);
// This file: its samples of broken citations are broken on purpose.
const SELF = 'test/unit/docs/contract.test.ts';

/** Every text file below `roots` (a file with a NUL byte is binary and left out). */
function textFiles(roots: readonly string[]): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  const visit = (entry: string): void => {
    const dirents = (() => {
      try {
        return readdirSync(entry, { withFileTypes: true });
      } catch {
        return null;
      }
    })();
    if (dirents === null) {
      const text = readFileSync(entry, 'utf8');
      if (!text.includes('\0')) out.push({ file: entry, text });
      return;
    }
    for (const d of dirents) {
      if (!SKIP.has(d.name) && (d.isDirectory() || d.isFile())) visit(path.join(entry, d.name));
    }
  };
  for (const root of roots) visit(root);
  return out;
}

/** The `## ` headings of a Markdown text. */
function headingsOf(markdown: string): Set<string> {
  return new Set(markdown.split('\n').filter((line) => line.startsWith('## ')).map((line) => line.slice(3).trim()));
}

/** What is wrong with the citations of the contract in one file's text, one line each. */
function citationProblems(file: string, text: string, headings: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  text.split('\n').forEach((line, index) => {
    const where = `${file}:${index + 1}`;
    for (const match of line.matchAll(/(\S*)CONTRACT\.md( "([^"]*)("?))?/g)) {
      if (!match[1]!.endsWith('test/cloud/')) problems.push(`${where}: cites ${match[1]}CONTRACT.md, not ${CONTRACT}`);
      if (match[2] === undefined) continue;
      if (match[4] !== '"') problems.push(`${where}: the quoted section does not end on its line`);
      else if (!headings.has(match[3]!)) problems.push(`${where}: no section "${match[3]}" in ${CONTRACT}`);
    }
    if (line.includes('../shared/')) problems.push(`${where}: cites ../shared/, outside the repository`);
  });
  return problems;
}

describe(CONTRACT, () => {
  const headings = headingsOf(readFileSync(CONTRACT, 'utf8'));

  it('keeps the sections the code cites by name', () => {
    for (const heading of ['Two generations of paths', 'Authentication', 'Next job', 'Status update', 'Job document (version 1.0)', 'Provisioning']) {
      expect(headings).toContain(heading);
    }
  });

  it('is what every citation in src, test, debian, systemd and README names, section included', () => {
    const files = textFiles(ROOTS).filter(({ file }) => file !== CONTRACT && file !== SELF);
    expect(files.length).toBeGreaterThan(300);
    const cited = files.filter(({ text }) => text.includes(CONTRACT));
    expect(cited.length).toBeGreaterThan(20);
    expect(files.flatMap(({ file, text }) => citationProblems(file, text, headings))).toEqual([]);
  });

  it('finds a bare name, another path, an unknown section, a section cut by a line break and ../shared/', () => {
    const text = [
      'see CONTRACT.md',
      'see ../shared/CONTRACT.md "Next job"',
      'see test/cloud/CONTRACT.md "Next jobs"',
      'see test/cloud/CONTRACT.md "Push',
      'see test/cloud/CONTRACT.md "Next job" and test/cloud/CONTRACT.md',
    ].join('\n');
    expect(citationProblems('f', text, headings)).toEqual([
      'f:1: cites CONTRACT.md, not test/cloud/CONTRACT.md',
      'f:2: cites ../shared/CONTRACT.md, not test/cloud/CONTRACT.md',
      'f:2: cites ../shared/, outside the repository',
      'f:3: no section "Next jobs" in test/cloud/CONTRACT.md',
      'f:4: the quoted section does not end on its line',
    ]);
  });
});
