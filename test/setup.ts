// Process warnings fail the suite (STYLE.md "Tests").
import { afterEach } from 'vitest';

const warnings: string[] = [];
process.on('warning', (warning) => {
  if (warning.name === 'ExperimentalWarning') return;
  warnings.push(`${warning.name}: ${warning.message}`);
});

afterEach(() => {
  if (warnings.length > 0) {
    const seen = warnings.splice(0);
    throw new Error(`process warnings were emitted:\n${seen.join('\n')}`);
  }
});
