#!/usr/bin/env bash
# CI (.ci/run): the man pages (docs/man/*.md, the one source of the CLI
# reference) name nothing that does not exist.
#  1. every --flag a program's page names is mentioned in that program's source,
#     as "--flag" (strcmp) or "flag" (the option tables of client/cli);
#  2. every --flag of the bash completion is on reqsign(1);
#  3. reqsign(3) lists exactly the functions the installed headers declare
#     (REQSIGN_API): none missing, none that does not exist.
# Usage: tools/check-docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
err() { echo "check-docs: $*" >&2; fail=1; }

# the long options named in a file: --name, outside words (so not "a--b")
flags_of() {
    grep -oE '(^|[^A-Za-z0-9_-])--[a-z0-9][a-z0-9-]*' "$1" | sed -E 's/^[^-]*//' | sort -u
}

# 1. page -> the sources of its program
declare -A sources=(
    [docs/man/reqsign.1.md]="client/cli/*.c client/cli/*.h"
    [docs/man/reqsignd.8.md]="server/reqsignd/*.c server/httpd/*.c server/httpd/*.h common/opt/*.c"
    [docs/man/api-backend.8.md]="examples/api-backend/main.c server/httpd/*.c server/httpd/*.h common/opt/*.c"
)
n=0
for page in "${!sources[@]}"; do
    [ -f "$page" ] || { err "$page is missing"; continue; }
    # shellcheck disable=SC2086 # the globs above
    src=$(cat ${sources[$page]})
    for flag in $(flags_of "$page"); do
        n=$((n + 1))
        if ! grep -qF -- "\"$flag\"" <<<"$src" && ! grep -qF -- "\"${flag#--}\"" <<<"$src"; then
            err "$page documents $flag, which ${sources[$page]} does not mention"
        fi
    done
done

# 2. the completion offers only what the page documents
man1=$(flags_of docs/man/reqsign.1.md)
for flag in $(flags_of dist/bash-completion/reqsign); do
    grep -qxF -- "$flag" <<<"$man1" || err "dist/bash-completion/reqsign offers $flag, not on reqsign(1)"
done

# 3. reqsign(3) and the headers
# (every public header: common/, client/, the verifier core server/include/ and
# the store libraries' server/*/include/, server/stores/*/include/)
declared=$(cat $(git ls-files -- '*/include/reqsign/*.h') |
    tr '\n' ' ' | grep -oE 'REQSIGN_API[^;(]*\breqsign_[a-z0-9_]+[[:space:]]*\(' |
    grep -oE 'reqsign_[a-z0-9_]+[[:space:]]*\($' | tr -d '( ' | sort -u)
listed=$(grep -oE '\breqsign_[a-z0-9_]+(\*\*)?\(\)' docs/man/reqsign.3.md | tr -d '*()' | sort -u)
for f in $(comm -23 <(echo "$declared") <(echo "$listed")); do
    err "docs/man/reqsign.3.md does not list $f(), which a public header declares"
done
for f in $(comm -13 <(echo "$declared") <(echo "$listed")); do
    err "docs/man/reqsign.3.md lists $f(), which no public header declares"
done

[ $fail -eq 0 ] && echo "check-docs: ok ($n flags on the man pages, $(echo "$declared" | wc -l) functions on reqsign(3))"
exit $fail
