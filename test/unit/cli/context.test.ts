// The runtime part of `cloudjobs --version`.
import { describe, expect, it } from 'vitest';
import { describeRuntime } from '../../../src/cli/context.js';

describe('describeRuntime', () => {
  it('names the embedded Node of a single executable', () => {
    expect(describeRuntime({ nodeVersion: 'v24.22.3', platform: 'linux', arch: 'arm64', singleExecutable: true })).toBe(
      'node v24.22.3, linux-arm64, single executable',
    );
  });

  it("names the system's nodejs when the bundle runs on it (armhf)", () => {
    expect(describeRuntime({ nodeVersion: 'v20.19.2', platform: 'linux', arch: 'arm', singleExecutable: false })).toBe(
      'node v20.19.2, linux-arm, system nodejs',
    );
  });
});
