#!/usr/bin/env bash
# The git plumbing of one stitched task, done by hand: the baseline of task_overhead.py.
#   plumbing.sh REPO WORKTREE_DIR COUNT
set -euo pipefail
repo=$1 wts=$2 count=$3
cd "$repo"
for i in $(seq 1 "$count"); do
  wt="$wts/plain-$i"
  git worktree add -q -b "plain/$i" "$wt" HEAD
  printf 'value = %s\n' "$i" > "$wt/plain_$i.py"
  git -C "$wt" add -A
  git -C "$wt" -c commit.gpgsign=false commit -q -m "plain task $i"
  git merge --squash -q "plain/$i" >/dev/null
  git -c commit.gpgsign=false commit -q -m "plain task $i"
  git worktree remove --force "$wt"
  git branch -q -D "plain/$i"
done
