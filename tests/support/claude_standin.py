#!/usr/bin/env python3
"""A stand-in for Claude Code, for baton's tests (no model is reachable here).

It behaves toward baton as the measured Claude Code does (see CLAUDE-CODE.md):

* Headless: `-p --input-format stream-json --output-format stream-json --verbose` keeps one
  process across turns: each stdin line {"type":"user",...} is a turn, ended by a
  {"type":"result",...} line. `--session-id ID` starts a session (an existing one: exit 1),
  `--resume ID` continues one with its context (a missing one: exit 1).
* Interactive (no -p): a TUI on a terminal that takes typed and bracketed-paste input, submits on
  Enter, and runs the hooks configured in ~/.claude/settings.json and ./.claude/settings.json
  with the same JSON on stdin and the same environment as Claude Code.

Prompts steer it: FAIL (an error result / StopFailure), DIE (exit mid-turn), HANG (never
answers), TOOL (headless: reports a Bash tool call, then waits at the FIFO
$HOME/.claude-standin/tool-gate if it exists), PERMISSION (a permission dialog, answered with y), STALL (works until Esc),
SLOWPASTE (the first Enter is lost). Ctrl-N fires the idle_prompt notification.
Sessions live in $HOME/.claude-standin/<id>.json.
"""
import json
import os
import signal
import subprocess
import sys
import uuid

STATE = os.path.join(os.environ.get("HOME", "/tmp"), ".claude-standin")


def session_path(sid):
    return os.path.join(STATE, sid + ".json")


def load(sid):
    with open(session_path(sid)) as f:
        return json.load(f)


def save(sid, turns):
    os.makedirs(STATE, exist_ok=True)
    tmp = session_path(sid) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(turns, f)
    os.replace(tmp, session_path(sid))


def answer(prompt, turns):
    memory = "; ".join(turns) if turns else "nothing yet"
    return f"turn {len(turns) + 1}: {prompt} (I remember: {memory})"


def arg(name):
    if name in sys.argv:
        i = sys.argv.index(name)
        if i + 1 < len(sys.argv):
            return sys.argv[i + 1]
    return None


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def open_session():
    resume, new = arg("--resume"), arg("--session-id")
    if resume:
        if not os.path.exists(session_path(resume)):
            print(f"No conversation found with session ID: {resume}", file=sys.stderr)
            sys.exit(1)
        return resume, load(resume)
    sid = new or str(uuid.uuid4())
    if new and os.path.exists(session_path(sid)):
        print(f"Error: Session ID {sid} is already in use.", file=sys.stderr)
        sys.exit(1)
    save(sid, [])
    return sid, []


def headless():
    sid, turns = open_session()
    with open(os.path.join(STATE, "starts.log"), "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\n")
    emit({"type": "system", "subtype": "init", "session_id": sid, "cwd": os.getcwd()})
    for line in sys.stdin:
        msg = json.loads(line)
        content = msg["message"]["content"]
        if isinstance(content, list):
            content = "".join(c.get("text", "") for c in content)
        if "DIE" in content:
            print("stand-in: dying mid-turn", file=sys.stderr)
            sys.exit(3)
        if "HANG" in content:
            signal.pause()
        if "FAIL" in content:
            emit({"type": "result", "subtype": "error_during_execution", "is_error": True,
                  "result": "the stand-in was told to fail", "session_id": sid})
            continue
        if "TOOL" in content:
            # A tool call, as Claude Code reports it; the turn then waits until the test opens
            # the gate FIFO (so that it can look at the agent's progress meanwhile).
            emit({"type": "assistant", "message": {"role": "assistant", "content": [
                {"type": "text", "text": "running the tests"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                 "input": {"command": "cargo test -q", "description": "run the tests"}}]},
                "session_id": sid})
            gate = os.path.join(STATE, "tool-gate")
            if os.path.exists(gate):
                with open(gate) as g:
                    g.readline()
        text = answer(content, turns)
        turns.append(content)
        save(sid, turns)
        emit({"type": "assistant", "message": {"role": "assistant",
              "content": [{"type": "text", "text": text}]}, "session_id": sid})
        emit({"type": "result", "subtype": "success", "is_error": False, "result": text,
              "session_id": sid, "num_turns": len(turns)})


# ---------------------------------------------------------------- interactive


def hook_commands(event):
    cmds = []
    for path in (os.path.join(os.environ.get("HOME", "/"), ".claude", "settings.json"),
                 os.path.join(os.getcwd(), ".claude", "settings.json")):
        try:
            with open(path) as f:
                settings = json.load(f)
        except (OSError, ValueError):
            continue
        for group in settings.get("hooks", {}).get(event, []):
            for h in group.get("hooks", []):
                if h.get("type") == "command":
                    cmds.append(h["command"])
    return cmds


def run_hooks(sid, event, extra):
    payload = {"session_id": sid, "transcript_path": session_path(sid), "cwd": os.getcwd(),
               "permission_mode": "default", "hook_event_name": event}
    payload.update(extra)
    env = dict(os.environ, CLAUDE_PROJECT_DIR=os.getcwd(), CLAUDE_CODE_SESSION_ID=sid)
    for cmd in hook_commands(event):
        subprocess.run(["/bin/sh", "-c", cmd], input=json.dumps(payload).encode(), env=env,
                       cwd=os.getcwd(), stdout=subprocess.DEVNULL)


def say(text):
    sys.stdout.write(text.replace("\n", "\r\n") + "\r\n")
    sys.stdout.flush()


def interactive():
    import termios
    import tty
    sid, turns = open_session()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    sys.stdout.write("\x1b[?2004h")
    say("stand-in Claude Code (interactive). > ")
    run_hooks(sid, "SessionStart", {"source": "startup"})
    buf, pasting, lost_enter = "", False, False
    pending = b""

    def key():
        return os.read(fd, 1)

    def turn(prompt):
        nonlocal turns
        run_hooks(sid, "UserPromptSubmit", {"prompt": prompt, "prompt_id": str(uuid.uuid4())})
        say(f"● working on: {prompt}")
        if "STALL" in prompt or "PERMISSION" in prompt:
            if "PERMISSION" in prompt:
                run_hooks(sid, "Notification", {"notification_type": "permission_prompt",
                          "message": "Claude needs your permission to use Bash"})
                say("Allow Bash? (y/n)")
            while True:
                k = key()
                if k == b"\x1b":
                    say("Interrupted by user")
                    return
                if k == b"y" and "PERMISSION" in prompt:
                    break
        if "FAIL" in prompt:
            run_hooks(sid, "StopFailure", {"error": "rate_limit",
                      "error_message": "simulated rate limit"})
            say("API Error: rate limit")
            return
        text = answer(prompt, turns)
        turns.append(prompt)
        save(sid, turns)
        say(text)
        run_hooks(sid, "Stop", {"stop_hook_active": False, "last_assistant_message": text,
                                "background_tasks": [], "session_crons": []})
        say("> ")

    try:
        while True:
            k = key()
            if not k:
                break
            pending += k
            if pending.endswith(b"\x1b[200~"):
                buf += pending[:-6].decode(errors="replace")
                pending, pasting = b"", True
                continue
            if pending.endswith(b"\x1b[201~"):
                buf += pending[:-6].decode(errors="replace")
                pending, pasting = b"", False
                continue
            if pasting or pending.startswith(b"\x1b") and len(pending) < 6:
                if pasting and not b"\x1b" in pending:
                    buf += pending.decode(errors="replace")
                    pending = b""
                continue
            text, pending = pending.decode(errors="replace"), b""
            if text == "\x0e":  # Ctrl-N: the idle_prompt notification
                run_hooks(sid, "Notification", {"notification_type": "idle_prompt",
                          "message": "Claude is waiting for your input"})
            elif text == "\x04":  # Ctrl-D: quit
                break
            elif text == "\r":
                if "SLOWPASTE" in buf and not lost_enter:
                    lost_enter = True
                    continue
                prompt, buf, lost_enter = buf.strip(), "", False
                if prompt:
                    turn(prompt)
            elif text in ("\x7f", "\x08"):
                buf = buf[:-1]
            elif text.isprintable():
                buf += text
                sys.stdout.write(text)
                sys.stdout.flush()
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


if __name__ == "__main__":
    if "-p" in sys.argv or "--print" in sys.argv:
        headless()
    else:
        interactive()
