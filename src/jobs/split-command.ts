// Turns a runCommand `input.command` string into argv without a shell.
//
// Two forms, told apart by one rule: a comma that is not preceded by a
// backslash makes the string AWS comma form; otherwise it is split into words.
//
// Comma form is what AWS IoT Device Client does (JobDocument.cpp: its
// SplitStringByComma, replace_all, then TrimCopy of " \t\n\v\f\r"): tokens are
// maximal runs of `\,` or non-comma characters, so empty tokens ("a,,b", a
// trailing comma) vanish; `\,` becomes a literal comma (no other escape
// exists); then blanks around each token are trimmed, so " \n echo \t, Hello
// World " is ["echo", "Hello World"], and a token of blanks only stays as an
// empty argument. A first token that still holds whitespace after trimming is
// refused, as DC refuses it. One deviation: an empty first token (" ,ls") is
// refused here too, where DC would accept it and fail to exec "".
//
// Word form splits on blanks honouring '...', "..." and backslashes like a
// POSIX shell does, but expands nothing: no variables, globs, `~`, or command
// substitution. Because nothing runs a shell, shell syntax that would change
// the meaning of the line (| & ; < > `...` $VAR $(...) ${...} and # comments),
// when left unquoted, is refused instead of being passed on as literal words:
// the author meant a shell, so they are told to set `input.shell: true`.
// One deviation from the shell: inside double quotes `\,` is a comma, so a
// comma can be written in word form without switching to comma form.

/** The outcome of splitting: argv and which form was recognised, or one problem sentence. */
export type SplitCommandResult =
  | { ok: true; form: 'comma' | 'words'; argv: string[] }
  | { ok: false; problem: string };

/** Returns whether `command` holds a comma not preceded by a backslash (AWS comma form). */
export function hasUnescapedComma(command: string): boolean {
  for (let i = 0; i < command.length; i += 1) {
    if (command[i] === ',' && command[i - 1] !== '\\') return true;
  }
  return false;
}

/** Splits a runCommand string into argv: AWS comma form when it has an unescaped comma, else shell-like words. */
export function splitCommand(command: string): SplitCommandResult {
  if (hasUnescapedComma(command)) return splitCommaForm(command);
  return splitWords(command);
}

/** Splits AWS comma form ("systemctl,restart,redis"; `\,` is a literal comma). */
export function splitCommaForm(command: string): SplitCommandResult {
  const argv: string[] = [];
  let token = '';
  for (let i = 0; i < command.length; i += 1) {
    const c = command[i];
    if (c === '\\' && command[i + 1] === ',') {
      token += ',';
      i += 1;
    } else if (c === ',') {
      if (token !== '') argv.push(token);
      token = '';
    } else {
      token += c;
    }
  }
  if (token !== '') argv.push(token);
  if (argv.length === 0) return { ok: false, problem: 'has no words between its commas' };
  for (let i = 0; i < argv.length; i += 1) argv[i] = trimBlanks(argv[i] as string);
  const first = argv[0] as string;
  if (first === '') {
    return { ok: false, problem: 'is in comma form but its first element is blank; it must name the program to run' };
  }
  // AWS IoT Device Client rejects this too: "docker restart,redis" is a typo,
  // not a program whose name contains blanks.
  if (/\s/.test(first)) {
    return {
      ok: false,
      problem:
        `is in comma form (it has an unescaped comma) but its first element ${quote(first)} contains whitespace; ` +
        'separate every word with a comma, or write the comma as \\, to split on blanks instead',
    };
  }
  return { ok: true, form: 'comma', argv };
}

// The characters DC trims around a comma-form token (C isspace in the C locale).
function trimBlanks(token: string): string {
  return token.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
}

const BLANK = new Set([' ', '\t', '\n', '\r']);
// Unquoted characters that a shell would treat as syntax.
const OPERATORS = new Set(['|', '&', ';', '<', '>', '`']);
// Characters a backslash escapes inside double quotes (POSIX, plus our comma).
const DQUOTE_ESCAPABLE = new Set(['$', '`', '"', '\\', ',']);

/** Splits a command line into words honouring quotes and backslashes, with no shell and no expansion. */
export function splitWords(command: string): SplitCommandResult {
  const argv: string[] = [];
  let word = '';
  // A word exists once anything (even '' or "") was read for it.
  let inWord = false;
  let i = 0;
  const shellSyntax = (what: string): SplitCommandResult => ({
    ok: false,
    problem:
      `uses shell syntax (${what}) but runs without a shell; ` +
      'set input.shell to true to run it with /bin/sh -c, or quote or escape it to pass it on literally',
  });
  while (i < command.length) {
    const c = command[i] as string;
    if (BLANK.has(c)) {
      if (inWord) argv.push(word);
      word = '';
      inWord = false;
      i += 1;
    } else if (c === '\\') {
      if (i + 1 >= command.length) return { ok: false, problem: 'ends with a lone backslash' };
      const next = command[i + 1] as string;
      // Backslash-newline is a line continuation, as in sh.
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      i += 2;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end === -1) return { ok: false, problem: `has an unbalanced single quote at character ${i + 1}` };
      word += command.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      const start = i;
      i += 1;
      let closed = false;
      while (i < command.length) {
        const d = command[i] as string;
        if (d === '"') {
          closed = true;
          i += 1;
          break;
        }
        if (d === '\\' && i + 1 < command.length) {
          const next = command[i + 1] as string;
          if (next === '\n') {
            i += 2;
            continue;
          }
          if (DQUOTE_ESCAPABLE.has(next)) {
            word += next;
            i += 2;
            continue;
          }
        }
        if (d === '`') return shellSyntax('` inside double quotes');
        if (d === '$' && isExpansionStart(command[i + 1])) return shellSyntax(`${d}${command[i + 1]} inside double quotes`);
        word += d;
        i += 1;
      }
      if (!closed) return { ok: false, problem: `has an unbalanced double quote at character ${start + 1}` };
      inWord = true;
    } else if (OPERATORS.has(c)) {
      return shellSyntax(c);
    } else if (c === '$' && isExpansionStart(command[i + 1])) {
      return shellSyntax(`${c}${command[i + 1]}`);
    } else if (c === '#' && !inWord) {
      return shellSyntax('# comment');
    } else {
      word += c;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) argv.push(word);
  if (argv.length === 0) return { ok: false, problem: 'is empty' };
  return { ok: true, form: 'words', argv };
}

// `$` followed by these starts an expansion in sh: $NAME, ${...}, $(...), $1, $?, ...
function isExpansionStart(next: string | undefined): boolean {
  return next !== undefined && /[A-Za-z_{(0-9?@*#!$-]/.test(next);
}

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}
