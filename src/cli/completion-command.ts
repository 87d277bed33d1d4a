/**
 * `cohort completion bash|zsh`: a shell completion script made from the
 * command tree itself (every command, subcommand and flag), so it never
 * falls behind the CLI.
 *
 * ```sh
 * eval "$(cohort completion bash)"            # bash: this shell (or save it in /etc/bash_completion.d/cohort)
 * eval "$(cohort completion zsh)"             # zsh: this shell (or save it as _cohort in your $fpath)
 * ```
 *
 * Both complete subcommands and long flags for the command typed so far, and
 * fall back to file names for a flag's value and for arguments.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';

/** One command path and what may follow it. */
interface Node {
  readonly path: string;
  readonly words: readonly string[];
  /** Flags that take a value (their value is a file name or free text). */
  readonly valued: readonly string[];
}

function walk(cmd: Command, path: string, into: Node[]): void {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  const flags = cmd.options.flatMap((o) => (o.long === undefined ? [] : [o.long]));
  const valued = cmd.options.flatMap((o) =>
    o.long !== undefined && (o.required || o.optional) ? [o.long] : [],
  );
  into.push({ path, words: [...subs.map((c) => c.name()), ...flags, '--help'], valued });
  for (const s of subs) {
    for (const name of [s.name(), ...s.aliases()])
      walk(s, path === '' ? name : `${path} ${name}`, into);
  }
}

/** The command tree of `program` as completion data. */
export function completionTable(program: Command): Node[] {
  const nodes: Node[] = [];
  walk(program, '', nodes);
  return nodes;
}

function shellWords(words: readonly string[]): string {
  return words.join(' ');
}

/** The bash completion script. */
export function bashCompletion(program: Command): string {
  const nodes = completionTable(program);
  const paths = `|${nodes.map((n) => n.path).join('|')}|`;
  const cases = nodes
    .map(
      (n) => `    "${n.path}") words="${shellWords(n.words)}"; valued="${shellWords(n.valued)}" ;;`,
    )
    .join('\n');
  return `# cohort completion for bash. Load it with: eval "$(cohort completion bash)"
_cohort() {
  local cur prev path i w words valued
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    case "${paths}" in *"|\${path:+$path }$w|"*) path="\${path:+$path }$w" ;; esac
  done
  case "$path" in
${cases}
    *) words=""; valued="" ;;
  esac
  case " $valued " in *" $prev "*) COMPREPLY=(); return ;; esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -o bashdefault -F _cohort cohort
`;
}

/** The zsh completion script. */
export function zshCompletion(program: Command): string {
  const nodes = completionTable(program);
  const paths = `|${nodes.map((n) => n.path).join('|')}|`;
  const cases = nodes
    .map(
      (n) =>
        `    "${n.path}") choices=(${shellWords(n.words)}); valued=(${shellWords(n.valued)}) ;;`,
    )
    .join('\n');
  return `#compdef cohort
# cohort completion for zsh. Load it with: eval "$(cohort completion zsh)"
_cohort() {
  local cmdpath="" w
  local -a choices valued
  for w in "\${(@)words[2,CURRENT-1]}"; do
    [[ $w == -* ]] && continue
    [[ "${paths}" == *"|\${cmdpath:+$cmdpath }$w|"* ]] && cmdpath="\${cmdpath:+$cmdpath }$w"
  done
  case "$cmdpath" in
${cases}
    *) choices=(); valued=() ;;
  esac
  if (( \${valued[(Ie)\${words[CURRENT-1]}]} )); then
    _files
    return
  fi
  compadd -- "\${choices[@]}"
  _files
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
  _cohort "$@"
else
  compdef _cohort cohort
fi
`;
}

/** Adds `cohort completion` to `program`. */
export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: eval "$(cohort completion bash)" (or zsh)')
    .argument('<shell>', 'bash or zsh', (v: string) => {
      if (v !== 'bash' && v !== 'zsh') throw new InvalidArgumentError('the shell is bash or zsh');
      return v;
    })
    .action((shell: 'bash' | 'zsh') => {
      process.stdout.write(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
    });
}
