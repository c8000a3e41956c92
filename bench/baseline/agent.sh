#!/usr/bin/env bash
# The original design's polling agent: every 0.1 s, look for <dir>/agent.prompt; answer it
# (here: echo it back), write the reply, then touch <dir>/reply.done.
dir=$1
while :; do
  if [ -f "$dir/agent.prompt" ]; then
    cat "$dir/agent.prompt" > "$dir/reply.tmp" && mv "$dir/reply.tmp" "$dir/reply"
    rm -f "$dir/agent.prompt"
    touch "$dir/reply.done"
  fi
  sleep 0.1
done
