# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_stratum_global_optspecs
    string join \n d/dir= segment-size= no-sync lock-timeout= q/quiet color= h/help V/version
end

function __fish_stratum_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_stratum_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_stratum_using_subcommand
    set -l cmd (__fish_stratum_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c stratum -n "__fish_stratum_needs_command" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_needs_command" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_needs_command" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_needs_command" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_needs_command" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_needs_command" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_needs_command" -s V -l version -d 'Print version'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "create-doc" -d 'Create a document and print its new id'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "add-input" -d 'Append an input node to a document\'s chain and print its node id'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "set-output" -d 'Set, replace or clear the expected output of an input node'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "get" -d 'Print a document as one line of JSON, or a part of it'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "update-doc" -d 'Replace or clear a document\'s body, key, category, version or meta; keep the rest'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "update-input" -d 'Set, patch or clear the metadata of an input node'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "delete-doc" -d 'Delete a document with its whole chain'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "delete-input" -d 'Delete one input node and its expected output'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "list" -d 'List live documents in id order: a table, or JSON Lines'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "compact" -d 'Merge the segments worth merging, keeping only live data'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "verify" -d 'Check every record of every file and report each problem'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "dump" -d 'Print every live document as JSON Lines, in id order'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "stats" -d 'Show segment sizes, counts and the garbage ratio'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "load" -d 'Load documents from JSON Lines in the `get` shape, all or nothing'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "apply" -d 'Apply a batch of write operations from JSON Lines, all or nothing'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "diff" -d 'Compare the store with another store or a JSON Lines file'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "backup" -d 'Copy the store to DEST, consistently and verified'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "repair" -d 'Salvage a damaged store: keep every record that passes its CRC'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "completions" -d 'Print a shell completion script on standard output'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "man" -d 'Print the man page (roff) on standard output'
complete -c stratum -n "__fish_stratum_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l file -d 'Read the body from this file' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l category -d 'The document\'s category' -r
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l doc-version -d 'The document\'s version (a label of yours; `-V/--version` is the program\'s)' -r
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l key -d 'The document\'s unique key (1 to 1024 bytes)' -r
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l meta -d 'The document\'s metadata: a JSON object, kept exactly as written' -r
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l json -d 'Accepted for scripts; the output is JSON already'
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand create-doc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -l output -d 'The expected output, as JSON' -r
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -l meta -d 'The node\'s metadata: a JSON object' -r
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -l json -d 'Accepted for scripts; the output is JSON already'
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand add-input" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand set-output" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand set-output" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand set-output" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand set-output" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand set-output" -l clear -d 'Remove the node\'s expected output instead of setting one'
complete -c stratum -n "__fish_stratum_using_subcommand set-output" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand set-output" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand set-output" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand get" -l node -d 'Print only this input node: {"node","input","output"} (with "meta" and "has_output" when they apply)' -r
complete -c stratum -n "__fish_stratum_using_subcommand get" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand get" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand get" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand get" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand get" -l pretty -d 'Indent the JSON, for reading (`load` and `diff` read one document per line)'
complete -c stratum -n "__fish_stratum_using_subcommand get" -l json -d 'Accepted for scripts: the output is JSON already (not with --body or --table)'
complete -c stratum -n "__fish_stratum_using_subcommand get" -l body -d 'Write the raw body bytes, nothing else'
complete -c stratum -n "__fish_stratum_using_subcommand get" -l input -d 'With --node: print only the node\'s input value'
complete -c stratum -n "__fish_stratum_using_subcommand get" -l output -d 'With --node: print only the node\'s expected output (null when unset)'
complete -c stratum -n "__fish_stratum_using_subcommand get" -l table -d 'Show the document and its chain as tables'
complete -c stratum -n "__fish_stratum_using_subcommand get" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand get" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l file -d 'Read the new body from this file' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l key -d 'The new key (1 to 1024 bytes, unique among live documents)' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l category -d 'The new category' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l doc-version -d 'The new version (a label of yours; `-V/--version` is the program\'s)' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l meta -d 'Replace the metadata with this JSON object' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l meta-patch -d 'Merge this JSON object into the metadata (RFC 7386 merge patch)' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l clear-key -d 'Remove the key'
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l clear-category -d 'Remove the category'
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l clear-version -d 'Remove the version'
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l clear-meta -d 'Remove the metadata'
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand update-doc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -l meta -d 'Replace the node\'s metadata with this JSON object' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -l meta-patch -d 'Merge this JSON object into the node\'s metadata (RFC 7386)' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -l clear-meta -d 'Remove the node\'s metadata'
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand update-input" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand delete-doc" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand delete-doc" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand delete-doc" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand delete-doc" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand delete-doc" -l if-exists -d 'Succeed (exit 0, change nothing) when the document, or the store, is not there, as `rm -f` does'
complete -c stratum -n "__fish_stratum_using_subcommand delete-doc" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand delete-doc" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand delete-doc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand delete-input" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand delete-input" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand delete-input" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand delete-input" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand delete-input" -l if-exists -d 'Succeed (exit 0, change nothing) when the node, its document, or the store is not there, as `rm -f` does'
complete -c stratum -n "__fish_stratum_using_subcommand delete-input" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand delete-input" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand delete-input" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand list" -l key -d 'Only the document with this key: a key lookup, which probes each sealed segment holding keys (compaction merges them), not the store' -r
complete -c stratum -n "__fish_stratum_using_subcommand list" -l key-prefix -d 'Only documents whose key starts with P' -r
complete -c stratum -n "__fish_stratum_using_subcommand list" -l category -d 'Only documents of this category' -r
complete -c stratum -n "__fish_stratum_using_subcommand list" -l meta -d 'Only documents whose meta has the top-level FIELD with exactly this JSON value (compared as compact text: `1.0` is not `1`). Repeat to require several; a field no document has selects nothing (exit 0)' -r
complete -c stratum -n "__fish_stratum_using_subcommand list" -l id -d 'Only documents whose id is in RANGE: N, A..B (both included), A.. or ..B' -r
complete -c stratum -n "__fish_stratum_using_subcommand list" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand list" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand list" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand list" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand list" -l missing-output -d 'Only documents with at least one input that has no expected output'
complete -c stratum -n "__fish_stratum_using_subcommand list" -l json -d 'JSON Lines instead of a table'
complete -c stratum -n "__fish_stratum_using_subcommand list" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand list" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l min-garbage -d 'Compact only when at least this fraction (0 to 1) of the segment bytes is garbage' -r
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l min-dead-bytes -d 'Compact only when at least this many segment bytes are garbage (K, M and G suffixes allowed)' -r
complete -c stratum -n "__fish_stratum_using_subcommand compact" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l dry-run -d 'Say what would be merged and written, change nothing'
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l full -d 'Rewrite the whole store, not only the segments worth merging'
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l json -d 'Report as one JSON object on stdout instead of a line on stderr'
complete -c stratum -n "__fish_stratum_using_subcommand compact" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand compact" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand compact" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand verify" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand verify" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand verify" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand verify" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand verify" -l json -d 'One JSON object instead of tables'
complete -c stratum -n "__fish_stratum_using_subcommand verify" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand verify" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l key -d 'Only the document with this key: a key lookup, which probes each sealed segment holding keys (compaction merges them), not the store' -r
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l key-prefix -d 'Only documents whose key starts with P' -r
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l category -d 'Only documents of this category' -r
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l meta -d 'Only documents whose meta has the top-level FIELD with exactly this JSON value (compared as compact text: `1.0` is not `1`). Repeat to require several; a field no document has selects nothing (exit 0)' -r
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l id -d 'Only documents whose id is in RANGE: N, A..B (both included), A.. or ..B' -r
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l fields -d 'Print only these fields of each document, comma-separated' -r
complete -c stratum -n "__fish_stratum_using_subcommand dump" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l records -d 'List the raw records of every segment instead of documents'
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l salvage -d 'Read what can be read from a damaged store (which may refuse to open)'
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l missing-output -d 'Only documents with at least one input that has no expected output'
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l high-water -d 'Also print the id high-water marks, so that `load --keep-ids` of the output never hands out an id this store used: a "node_high_water" field on every document, and a last line {"high_water":{"doc":N}}'
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l json -d 'Accepted for scripts: the output is JSON Lines already; with --salvage, the summary on stderr is JSON too'
complete -c stratum -n "__fish_stratum_using_subcommand dump" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand dump" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand dump" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand stats" -l by -d 'Count documents, inputs and outputs per value of this field' -r -f -a "category\t'The document\'s category'"
complete -c stratum -n "__fish_stratum_using_subcommand stats" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand stats" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand stats" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand stats" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand stats" -l json -d 'One JSON object instead of tables'
complete -c stratum -n "__fish_stratum_using_subcommand stats" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand stats" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand load" -l on-conflict -d 'What a line does whose key a live document holds: fail (exit 4), replace that document, or skip the line' -r -f -a "fail\t'Refuse the whole batch (exit 4), as without the flag'
replace\t'Replace the document holding the key, keeping its id'
skip\t'Leave the document holding the key as it is'"
complete -c stratum -n "__fish_stratum_using_subcommand load" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand load" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand load" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand load" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand load" -l keep-ids -d 'Keep the documents\' "id" and "node" fields instead of assigning new ids'
complete -c stratum -n "__fish_stratum_using_subcommand load" -l json -d 'Accepted for scripts; the output is JSON already'
complete -c stratum -n "__fish_stratum_using_subcommand load" -l allow-high-ids -d 'With --keep-ids, accept ids so high that fewer than 2^32 ids would remain above them (one such id could end document or node creation for good)'
complete -c stratum -n "__fish_stratum_using_subcommand load" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand load" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand load" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand apply" -l on-conflict -d 'What a create-doc does whose key a live document holds: fail (exit 4), replace that document, or skip it' -r -f -a "fail\t'Refuse the whole batch (exit 4), as without the flag'
replace\t'Replace the document holding the key, keeping its id'
skip\t'Leave the document holding the key as it is'"
complete -c stratum -n "__fish_stratum_using_subcommand apply" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand apply" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand apply" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand apply" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand apply" -l json -d 'Accepted for scripts; the output is JSON already'
complete -c stratum -n "__fish_stratum_using_subcommand apply" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand apply" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand diff" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand diff" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand diff" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand diff" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand diff" -l json -d 'JSON Lines even on a terminal'
complete -c stratum -n "__fish_stratum_using_subcommand diff" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand diff" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand backup" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand backup" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand backup" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand backup" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand backup" -l link -d 'Hard-link the sealed segments and their indexes instead of copying them, where DEST is on the same file system: fast and small, but no protection against damage to those files'
complete -c stratum -n "__fish_stratum_using_subcommand backup" -l json -d 'Report as one JSON object on stdout instead of a line on stderr'
complete -c stratum -n "__fish_stratum_using_subcommand backup" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand backup" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand repair" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand repair" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand repair" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand repair" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand repair" -l json -d 'Report as one JSON object on stdout instead of a line on stderr'
complete -c stratum -n "__fish_stratum_using_subcommand repair" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand repair" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand repair" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand completions" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand completions" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand completions" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand completions" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand completions" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand completions" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand man" -s d -l dir -d 'The data directory (created by the first write command)' -r -F
complete -c stratum -n "__fish_stratum_using_subcommand man" -l segment-size -d 'Seal the active segment once it would grow past this size' -r
complete -c stratum -n "__fish_stratum_using_subcommand man" -l lock-timeout -d 'Wait this many seconds for another process\'s lock before failing (exit 5). Fractions allowed: 0.5' -r
complete -c stratum -n "__fish_stratum_using_subcommand man" -l color -d 'When to use colour (bold table headers): auto uses it when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`' -r -f -a "auto\t'Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`'
never\t'Never colour'
always\t'Always colour, also into a pipe'"
complete -c stratum -n "__fish_stratum_using_subcommand man" -l no-sync -d 'Skip the fsync that makes each write durable: for throwaway fixtures'
complete -c stratum -n "__fish_stratum_using_subcommand man" -s q -l quiet -d 'Print nothing on success but the command\'s data'
complete -c stratum -n "__fish_stratum_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "create-doc" -d 'Create a document and print its new id'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "add-input" -d 'Append an input node to a document\'s chain and print its node id'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "set-output" -d 'Set, replace or clear the expected output of an input node'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "get" -d 'Print a document as one line of JSON, or a part of it'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "update-doc" -d 'Replace or clear a document\'s body, key, category, version or meta; keep the rest'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "update-input" -d 'Set, patch or clear the metadata of an input node'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "delete-doc" -d 'Delete a document with its whole chain'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "delete-input" -d 'Delete one input node and its expected output'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "list" -d 'List live documents in id order: a table, or JSON Lines'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "compact" -d 'Merge the segments worth merging, keeping only live data'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "verify" -d 'Check every record of every file and report each problem'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "dump" -d 'Print every live document as JSON Lines, in id order'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "stats" -d 'Show segment sizes, counts and the garbage ratio'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "load" -d 'Load documents from JSON Lines in the `get` shape, all or nothing'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "apply" -d 'Apply a batch of write operations from JSON Lines, all or nothing'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "diff" -d 'Compare the store with another store or a JSON Lines file'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "backup" -d 'Copy the store to DEST, consistently and verified'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "repair" -d 'Salvage a damaged store: keep every record that passes its CRC'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "completions" -d 'Print a shell completion script on standard output'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "man" -d 'Print the man page (roff) on standard output'
complete -c stratum -n "__fish_stratum_using_subcommand help; and not __fish_seen_subcommand_from create-doc add-input set-output get update-doc update-input delete-doc delete-input list compact verify dump stats load apply diff backup repair completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
