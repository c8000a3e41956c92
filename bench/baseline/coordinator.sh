#!/usr/bin/env bash
# The original design's polling coordinator: copy the prompt into <dir>/agent.prompt, then every
# 0.1 s look for <dir>/reply.done; print the reply.
dir=$1 prompt=$2
printf '%s' "$prompt" > "$dir/prompt.tmp" && mv "$dir/prompt.tmp" "$dir/agent.prompt"
until [ -f "$dir/reply.done" ]; do sleep 0.1; done
cat "$dir/reply"
rm -f "$dir/reply" "$dir/reply.done"
