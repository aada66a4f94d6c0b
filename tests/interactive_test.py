#!/usr/bin/env python3
"""vexrun's interactive chat on a pseudo-terminal, as a person uses it: a line edited before
Enter (typed, erased with Backspace, retyped), /reset confirming itself, an answer, history
recalled with the Up arrow, and Ctrl-C at the prompt exiting with 130.
    tests/interactive_test.py BUILD_DIR"""
import os, pty, select, sys, time

vexrun = os.path.join(sys.argv[1], "vexrun")
pid, fd = pty.fork()
if pid == 0:
    os.execv(vexrun, [vexrun, "--temp", "0", "-n", "40"])

seen = b""
def wait_for(needle, timeout=60.0, since=0):
    """Reads the terminal until `needle` shows after byte `since` of what was seen."""
    global seen
    end = time.time() + timeout
    while needle not in seen[since:]:
        left = end - time.time()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise SystemExit(f"FAIL: waited for {needle!r}; the terminal shows:\n{seen.decode(errors='replace')[-800:]}")
        try:
            seen += os.read(fd, 4096)
        except OSError:
            raise SystemExit(f"FAIL: vexrun ended while waiting for {needle!r}:\n{seen.decode(errors='replace')[-800:]}")

wait_for(b"interactive chat")
wait_for(b"> ")
os.write(fd, b"/rest\x7f\x7fset\r")            # "/rest", two Backspaces, "set": /reset
wait_for(b"conversation cleared")
mark = len(seen)
os.write(fd, b"What is 127 * 89?\r")
wait_for(b"127 * 89 =", since=mark)
wait_for(b"> ", since=mark)
mark = len(seen)
os.write(fd, b"\x1b[A")                          # Up: the last line again
wait_for(b"What is 127 * 89?", 10, since=mark)
os.write(fd, b"\x15")                            # Ctrl-U: clear it
time.sleep(0.3)
os.write(fd, b"\x03")                            # Ctrl-C at the prompt
_, status = os.waitpid(pid, 0)
code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
if code != 130:
    raise SystemExit(f"FAIL: Ctrl-C at the prompt exited {code}, want 130")
print("interactive chat: editing, /reset, an answer, history and Ctrl-C work")
