#!/bin/sh
# A complete baton agent in POSIX sh, speaking the file protocol of the README: it answers each
# prompt in upper case. Usage: example-agent.sh NAME (then: baton ask NAME "hello").
# shellcheck disable=SC2012 # `ls | sort`: inbox entry names never hold spaces
set -eu
name=$1
root=${BATON_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/baton}
a=$root/agents/$name
(umask 077 && mkdir -p "$a/inbox/tmp" "$a/inbox/new" "$a/inbox/cur")
exec 9>>"$a/lock"                        # liveness: hold the lock while we live
flock -n 9 || { echo "agent $name is already running" >&2; exit 2; }
while :; do
  for e in $(ls "$a/inbox/new" | sort); do              # priority, then time
    mv "$a/inbox/new/$e" "$a/inbox/cur/$e" 2>/dev/null || continue   # claim (atomic)
    id=${e#?-}; t=$root/tasks/$id
    if tr '[:lower:]' '[:upper:]' <"$t/prompt" >"$t/.result"; then st=ok rc=0; else st=failed rc=1; fi
    mv "$t/.result" "$t/result"                         # the answer, before the sentinel
    printf '{"task_id":"%s","state":"%s","exit_code":%d,"finished_at":"%s","error":null}\n' \
      "$id" "$st" "$rc" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$t/.done"
    mv "$t/.done" "$t/done.json"; rm -f "$a/inbox/cur/$e"      # the sentinel, last
  done
  # Sleep until something lands (inotify-tools), else look again in a fifth of a second.
  inotifywait -qq -t 60 -e moved_to -e create "$a/inbox/new" 2>/dev/null || sleep 0.2
done
