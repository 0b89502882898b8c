#!/bin/sh
# shoemaker done [--status completed|blocked] [--reason TEXT]
#
# The agent's completion signal where shoemaker itself cannot run (a container image without
# it, or without Python): writes the same file as `shoemaker done`, at $SHOEMAKER_DONE_FILE,
# for task $SHOEMAKER_TASK. Every value is printed with '%s', never evaluated.
set -u

die() {
    printf 'shoemaker: %s\n' "$1" >&2
    exit 2
}

usage='usage: shoemaker done [--status completed|blocked] [--reason TEXT]'
[ "$#" -ge 1 ] && [ "$1" = done ] || die "$usage"
shift
status=completed
reason=
while [ "$#" -gt 0 ]; do
    case $1 in
        --status)
            [ "$#" -ge 2 ] || die '--status needs a value: completed or blocked'
            status=$2
            shift 2
            ;;
        --status=*)
            status=${1#--status=}
            shift
            ;;
        --reason)
            [ "$#" -ge 2 ] || die '--reason needs a value'
            reason=$2
            shift 2
            ;;
        --reason=*)
            reason=${1#--reason=}
            shift
            ;;
        *)
            die "$usage"
            ;;
    esac
done
case $status in
    completed | blocked) ;;
    *) die '--status: use completed or blocked' ;;
esac
if [ -z "${SHOEMAKER_TASK:-}" ] || [ -z "${SHOEMAKER_DONE_FILE:-}" ]; then
    die 'not inside a shoemaker run (SHOEMAKER_TASK or SHOEMAKER_DONE_FILE is not set): only an agent that shoemaker started for a task can signal it'
fi
if [ "$status" = blocked ]; then
    case $reason in
        *[![:space:]]*) ;;
        *) die '--status blocked needs --reason TEXT: what a person must do or decide' ;;
    esac
fi
if [ "${#reason}" -gt 8000 ]; then
    die '--reason is too long; keep it under 8000 characters'
fi
tmp="${SHOEMAKER_DONE_FILE%/*}/.shoemaker-done.$$"
printf 'shoemaker-done 1\ntask: %s\nstatus: %s\n\n%s' "$SHOEMAKER_TASK" "$status" "$reason" >"$tmp" ||
    die "cannot write $tmp"
mv -f -- "$tmp" "$SHOEMAKER_DONE_FILE" || die "cannot write $SHOEMAKER_DONE_FILE"
printf 'shoemaker: task %s signalled %s\n' "$SHOEMAKER_TASK" "$status"
