# The escape probe for container images, which may have no Python: POSIX sh, shell builtins
# first. shoemaker passes this file's text as `sh -c TEXT escape-probe ARGS` (its own text, never
# an agent's). Arguments: marker host-pid host-start host-pidns socket git-file target...
# A nested user namespace is not tried: the container runtime's seccomp profile decides it.
# Each try prints `ESCAPE<tab>key<tab>refused|escaped<tab>what happened`, as escape_probe.py does.
say() { printf 'ESCAPE\t%s\t%s\t%s\n' "$1" "$2" "$3"; }
write() { (set -C; printf 'written from inside the sandbox\n' >"$1") 2>&1; }
nl='
'
why() { first=${1%%"$nl"*}; printf '%s' "${first##*: }"; }
marker=$1 pid=$2 start=$3 pidns=$4 sock=$5 gitfile=$6
shift 6

if err=$(write "/proc/$pid/cwd/$marker.proc"); then
  say proc-cwd escaped "wrote /proc/$pid/cwd/$marker.proc"
else
  say proc-cwd refused "/proc/$pid/cwd/$marker.proc: $(why "$err")"
fi

processes() {
  seen=no
  if read -r stat 2>/dev/null <"/proc/$pid/stat"; then
    set -- ${stat##*) }
    [ "${20}" = "$start" ] && seen=yes
  fi
  ours=$(readlink /proc/self/ns/pid 2>/dev/null)
  if [ $seen = yes ]; then
    say processes escaped "shoemaker's pid $pid is visible"
  elif [ "$ours" = "$pidns" ]; then
    say processes escaped "$ours is the host's pid namespace"
  else
    say processes refused "own pid namespace (${ours:-not compared: no readlink})"
  fi
}
processes

if ! command -v mount >/dev/null 2>&1; then
  say remount refused "no mount program in the image (capabilities below)"
elif err=$(mount -o remount,bind,rw / 2>&1); then
  if write "/tmp/$marker.remount" >/dev/null; then
    say remount escaped "remounted / read-write and wrote /tmp"
  else
    say remount escaped "remounted / read-write"
  fi
  mount -o remount,bind,ro / 2>/dev/null
else
  say remount refused "mount -o remount,bind,rw /: $(why "$err")"
fi

for target in "$@"; do
  if err=$(write "$target/$marker"); then
    say "write:$target" escaped "wrote $target/$marker"
  else
    say "write:$target" refused "$(why "$err")"
  fi
done

status() {
  while read -r key value; do
    [ "$key" = "$1:" ] && { printf '%s' "$value"; return; }
  done </proc/self/status
}
caps=$(status CapEff)
case $caps in
  *[1-9a-f]*) say capabilities escaped "CapEff $caps" ;;
  *) say capabilities refused "CapEff $caps" ;;
esac
if [ "$(status NoNewPrivs)" = 1 ]; then
  say setuid refused "no_new_privs set: setuid programs cannot raise privileges"
else
  say setuid escaped "no_new_privs not set"
fi

if [ -n "$gitfile" ]; then
  if err=$( (printf '\n' >>"$gitfile") 2>&1); then
    say git-file escaped "appended to $gitfile"
  else
    say git-file refused "$gitfile: $(why "$err")"
  fi
fi

if [ -n "$sock" ]; then
  if [ -S "$sock" ]; then
    say socket escaped "the host's socket $sock is visible"
  else
    say socket refused "the host's socket $sock is not visible"
  fi
fi
