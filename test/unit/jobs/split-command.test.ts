import { describe, expect, it } from 'vitest';
import { hasUnescapedComma, splitCommand, splitCommaForm, splitWords } from '../../../src/jobs/split-command.js';

const SHELL_HINT = 'set input.shell to true to run it with /bin/sh -c, or quote or escape it to pass it on literally';

describe('hasUnescapedComma', () => {
  it.each([
    ['df,-h', true],
    ['df -h', false],
    ['echo a\\,b', false],
    [',', true],
    ['a\\,b,c', true],
    ['', false],
  ])('%j -> %s', (command, expected) => {
    expect(hasUnescapedComma(command)).toBe(expected);
  });
});

describe('splitCommand: AWS comma form', () => {
  it.each<[string, string[]]>([
    ['df,-h', ['df', '-h']],
    ['systemctl,restart,redis', ['systemctl', 'restart', 'redis']],
    ['mkdir,newDir', ['mkdir', 'newDir']],
    ['echo,a\\,b,c', ['echo', 'a,b', 'c']],
    // Like AWS: empty tokens vanish; blanks around each token are trimmed.
    ['a,,b,', ['a', 'b']],
    [',echo,x', ['echo', 'x']],
    ['echo, spaced ,x', ['echo', 'spaced', 'x']],
    // AWS IoT Device Client's own vector (TestJobDocument CommandContainsSpaceCharacters).
    [' \n echo \t, Hello World ', ['echo', 'Hello World']],
    // A token of blanks only stays, as an empty argument (DC keeps it too).
    ['printf,%s|,\t ,x', ['printf', '%s|', '', 'x']],
    // Trimming happens after `\,` became a comma, and only ASCII blanks go.
    ['echo,\\, ,\u00a0x\u00a0', ['echo', ',', '\u00a0x\u00a0']],
    // Quotes and other backslashes mean nothing in comma form.
    ['sh,-c,echo "$HOME" | wc -c', ['sh', '-c', 'echo "$HOME" | wc -c']],
    ['printf,%s\\n,x', ['printf', '%s\\n', 'x']],
    ['echo,it\'s', ['echo', "it's"]],
    // AWS has no escape for the backslash itself: "\\," is a backslash then an escaped comma.
    ['echo,a\\\\,b', ['echo', 'a\\,b']],
  ])('%j -> %j', (command, argv) => {
    expect(splitCommand(command)).toEqual({ ok: true, form: 'comma', argv });
  });

  it('refuses a string of commas only', () => {
    expect(splitCommand(',,,')).toEqual({ ok: false, problem: 'has no words between its commas' });
  });

  it('refuses a first element with blanks, like AWS IoT Device Client', () => {
    expect(splitCommand('docker restart,redis')).toEqual({
      ok: false,
      problem:
        'is in comma form (it has an unescaped comma) but its first element "docker restart" contains whitespace; ' +
        'separate every word with a comma, or write the comma as \\, to split on blanks instead',
    });
  });

  it("refuses DC's own vector of a first word with blanks inside (SpaceCharactersContainedWithinFirstWordOfCommand)", () => {
    expect(splitCommand(' aws iot \t,describe-endpoint')).toEqual({
      ok: false,
      problem:
        'is in comma form (it has an unescaped comma) but its first element "aws iot" contains whitespace; ' +
        'separate every word with a comma, or write the comma as \\, to split on blanks instead',
    });
  });

  it('refuses a blank first element (DC would try to exec "")', () => {
    expect(splitCommand(' \t,ls')).toEqual({
      ok: false,
      problem: 'is in comma form but its first element is blank; it must name the program to run',
    });
  });

  it('splitCommaForm works on its own', () => {
    expect(splitCommaForm('one')).toEqual({ ok: true, form: 'comma', argv: ['one'] });
  });
});

describe('splitCommand: words', () => {
  it.each<[string, string[]]>([
    ['docker restart redis', ['docker', 'restart', 'redis']],
    ['  df   -h  ', ['df', '-h']],
    ['a\tb\nc', ['a', 'b', 'c']],
    ["echo 'hello world'", ['echo', 'hello world']],
    ['echo "hello world"', ['echo', 'hello world']],
    ['echo hello\\ world', ['echo', 'hello world']],
    ["echo 'a\"b'", ['echo', 'a"b']],
    ['echo "a\'b"', ['echo', "a'b"]],
    ["echo '' x", ['echo', '', 'x']],
    ['echo "" x', ['echo', '', 'x']],
    ['echo a"b c"d', ['echo', 'ab cd']],
    ["echo 'a\\b'", ['echo', 'a\\b']],
    ['echo "a\\"b"', ['echo', 'a"b']],
    ['echo "a\\\\b"', ['echo', 'a\\b']],
    ['echo "a\\nb"', ['echo', 'a\\nb']],
    ['echo "\\$HOME"', ['echo', '$HOME']],
    ['echo \\$HOME', ['echo', '$HOME']],
    ["echo '$HOME | x; y'", ['echo', '$HOME | x; y']],
    ['echo a\\,b', ['echo', 'a,b']],
    ['echo "a\\,b"', ['echo', 'a,b']],
    ['echo a \\\n b', ['echo', 'a', 'b']],
    ['echo "a\\\nb"', ['echo', 'ab']],
    ['echo a#b', ['echo', 'a#b']],
    ['echo \\#x', ['echo', '#x']],
    ['find / -name *.conf', ['find', '/', '-name', '*.conf']],
    ['ls ~', ['ls', '~']],
    ['echo 5$', ['echo', '5$']],
    ['echo ünïcödé 日本', ['echo', 'ünïcödé', '日本']],
  ])('%j -> %j', (command, argv) => {
    expect(splitCommand(command)).toEqual({ ok: true, form: 'words', argv });
  });

  it.each<[string, string]>([
    ['', 'is empty'],
    ['   \t ', 'is empty'],
    ["echo 'abc", 'has an unbalanced single quote at character 6'],
    ['echo "abc', 'has an unbalanced double quote at character 6'],
    ['echo "a\\"', 'has an unbalanced double quote at character 6'],
    ['echo abc\\', 'ends with a lone backslash'],
  ])('%j is refused: %s', (command, problem) => {
    expect(splitCommand(command)).toEqual({ ok: false, problem });
  });

  it.each<[string, string]>([
    ['df -h | grep root', '|'],
    ['make && make install', '&'],
    ['sleep 10 &', '&'],
    ['a; b', ';'],
    ['cat < /etc/passwd', '<'],
    ['echo x > /tmp/y', '>'],
    ['echo `id`', '`'],
    ['echo $HOME', '$H'],
    ['echo $(id)', '$('],
    ['echo ${HOME}', '${'],
    ['echo $1', '$1'],
    ['echo hi # comment', '# comment'],
    ['echo "$HOME"', '$H inside double quotes'],
    ['echo "`id`"', '` inside double quotes'],
  ])('%j is refused as shell syntax (%s)', (command, what) => {
    expect(splitCommand(command)).toEqual({
      ok: false,
      problem: `uses shell syntax (${what}) but runs without a shell; ${SHELL_HINT}`,
    });
  });

  it('splitWords does not switch to comma form itself', () => {
    expect(splitWords('a,b c')).toEqual({ ok: true, form: 'words', argv: ['a,b', 'c'] });
  });
});
