// Reads a V8 heap snapshot (written by the agent on SIGUSR2 under
// NODE_OPTIONS=--heapsnapshot-signal) to tell which strings exist as heap
// strings. The bundle's source is one big string; a string literal of a module
// becomes a heap string of its own only once the module's code is compiled,
// that is, once the module is evaluated.
import { readFile } from 'node:fs/promises';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Returns which of `wanted` exist as string nodes in the snapshot file. */
export async function findHeapStrings(file: string, wanted: readonly string[]): Promise<Set<string>> {
  const data = JSON.parse(await readFile(file, 'utf8')) as Snapshot;
  const fields = data.snapshot.meta.node_fields;
  const typeIndex = fields.indexOf('type');
  const nameIndex = fields.indexOf('name');
  const types = data.snapshot.meta.node_types[0];
  const stringTypes = new Set(['string', 'concatenated string', 'sliced string'].map((t) => types.indexOf(t)));
  const wantedSet = new Set(wanted);
  const found = new Set<string>();
  for (let i = 0; i < data.nodes.length; i += fields.length) {
    if (!stringTypes.has(data.nodes[i + typeIndex] as number)) continue;
    const name = data.strings[data.nodes[i + nameIndex] as number] as string;
    if (wantedSet.has(name)) found.add(name);
  }
  return found;
}
