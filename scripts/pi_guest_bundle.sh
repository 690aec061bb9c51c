#!/bin/sh
# Runs INSIDE the emulated Raspberry Pi userland, started by scripts/pi_emulation.sh (not by hand).
# The device bundle (export-model --bundle, made on x86) the way the README tells a user to install
# it, with NO package index: as the ordinary user `pi` (HOME=/home/pi, no PREFIX), in the home
# folder, the README's own words `tar xzf pi-bundle.tar.gz && pi-bundle/install.sh` (machine/Python/
# SHA256SUMS checks, venv, offline pip, self-test), then `~/pi-bundle/run.sh watch` + the sample
# images dropped into its inbox, answers compared with the ones recorded on x86; then that a bundle
# with one flipped byte in the model is refused by install.sh and that edge-infer refuses the file.
#
# Usage: pi_guest_bundle.sh WORK NAME [TAG]   (WORK/bundle/NAME.tar.gz in, WORK/arm/TAG-* out; TAG: bundle)
# Prints "PI-CHECK <TAG>-<name> PASS|FAIL|SKIP <detail>"; exit status: the number of failed checks.
WORK=$1 NAME=$2 TAG=${3:-bundle}
export TAG
PI_UID=1000
HOME_PI=/home/pi
PREFIX=$HOME_PI/$NAME   # where the README's command installs: in place, in the folder it unpacked
fails=0
check() { echo "PI-CHECK $1 $2 $3"; [ "$2" = FAIL ] && fails=$((fails + 1)); return 0; }
indent() { while IFS= read -r line; do echo "  $line"; done; }
now() { date +%s; }

# No package index: pip must take everything from the bundle's wheels/.
printf '[global]\nindex-url = http://127.0.0.1:9/no-index-here\nno-index = true\n' > /tmp/pip-noindex.conf
chmod 644 /tmp/pip-noindex.conf
export PIP_CONFIG_FILE=/tmp/pip-noindex.conf PIP_NO_INDEX=1 PIP_INDEX_URL=http://127.0.0.1:9/no-index-here

# The user `pi` of Raspberry Pi OS (this minimal userland has no adduser: the passwd lines by hand).
has_entry() { while IFS=: read -r name _; do [ "$name" = "$1" ] && return 0; done < "$2"; return 1; }  # no grep here
has_entry pi /etc/passwd || echo "pi:x:$PI_UID:$PI_UID:pi:$HOME_PI:/bin/sh" >> /etc/passwd
has_entry pi /etc/group || echo "pi:x:$PI_UID:" >> /etc/group
rm -rf "$HOME_PI" && mkdir -p "$HOME_PI" && cp "$WORK/bundle/$NAME.tar.gz" "$HOME_PI/" && chown -R "$PI_UID:$PI_UID" "$HOME_PI"
# as_pi CMD: run CMD with sh as user pi in /home/pi, with a login's environment (no util-linux here:
# python3 drops root the way su would)
as_pi() {
    python3 - "$1" <<'PYEOF'
import os, sys
env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/pi", "USER": "pi", "LOGNAME": "pi", "LANG": "C.UTF-8",
       "TERM": "dumb", **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "QEMU_"))}}
os.setgroups([])
os.setgid(1000)
os.setuid(1000)
os.chdir("/home/pi")
os.execve("/bin/sh", ["sh", "-c", sys.argv[1]], env)
PYEOF
}

echo "==> [pi:bundle] as user pi in $HOME_PI, the README's words: tar xzf $NAME.tar.gz && $NAME/install.sh (no package index)"
t0=$(now)
as_pi "id && tar xzf $NAME.tar.gz && $NAME/install.sh" > "$WORK/arm/$TAG-install.log" 2>&1
rc=$?
indent < "$WORK/arm/$TAG-install.log" | tail -n 14
in_place=0
while IFS= read -r line; do [ "$line" = "install.sh: installing in place, in $PREFIX" ] && in_place=1; done < "$WORK/arm/$TAG-install.log"
if [ $rc = 0 ] && [ $in_place = 1 ]; then
    check "$TAG"-install PASS "as pi, no PREFIX: installed in place in $PREFIX, offline + self-test ($(( $(now) - t0 )) s)"
else
    check "$TAG"-install FAIL "as pi, no PREFIX: install.sh exit $rc"
fi

echo "==> [pi:bundle] as pi, the README's service: ~/$NAME/run.sh watch, the sample images dropped into ~/$NAME/inbox"
n=0
for f in "$PREFIX"/samples/*.png; do [ -f "$f" ] && n=$((n + 1)); done
if [ $rc != 0 ] || [ $n = 0 ]; then
    check "$TAG"-service SKIP "not installed"
else
    as_pi "~/$NAME/run.sh watch --max-images $n --duration 400" > "$WORK/arm/$TAG-watch.out" 2> "$WORK/arm/$TAG-watch.err" &
    pid=$!
    i=0
    while [ $i -lt 300 ]; do  # wait for "watching ..." (a process start costs seconds under qemu)
        if [ -s "$WORK/arm/$TAG-watch.err" ]; then break; fi
        if ! kill -0 $pid 2>/dev/null; then break; fi
        sleep 1; i=$((i + 1))
    done
    as_pi "cp ~/$NAME/samples/*.png ~/$NAME/inbox/"
    wait $pid
    wrc=$?
    indent < "$WORK/arm/$TAG-watch.err" | tail -n 3
    if "$PREFIX/venv/bin/python" - "$PREFIX/bundle.json" "$WORK/arm/$TAG-watch.out" <<'PYEOF'
import json, os, sys
info = json.load(open(sys.argv[1]))
got = {}
for line in open(sys.argv[2]):
    if line.startswith("{"):
        d = json.loads(line)
        got[os.path.basename(d["path"])] = d
bad = 0
for s in info["samples"]:
    g = got.get(s["file"])
    same = g is not None and g["label"] == s["label"]
    bad += not same
    print(f"  {s['file']:<26} x86 {s['label']:>4} ({s['score']:.4f})   aarch64 watch "
          f"{g['label'] if g else '-':>4} ({g['score'] if g else float('nan'):.4f}){'' if same else '   <-- differs'}")
print(f"PI-CHECK {os.environ.get('TAG', 'bundle')}-service {'PASS' if not bad else 'FAIL'} run.sh watch: {len(info['samples']) - bad}/{len(info['samples'])} "
      f"answers equal x86's recorded ones")
sys.exit(1 if bad else 0)
PYEOF
    then :; else fails=$((fails + 1)); fi
    [ $wrc = 0 ] || echo "  (run.sh watch exited $wrc)"
fi

echo "==> [pi:bundle] the service: run.sh serve, POST each sample image to /predict"
if [ $rc != 0 ] || [ $n = 0 ]; then
    check "$TAG"-serve SKIP "not installed"
elif "$PREFIX/venv/bin/python" - "$PREFIX" "$WORK/arm/$TAG-serve.err" <<'PYEOF'
import json, os, signal, socket, subprocess, sys, time, urllib.request
prefix, err_path = sys.argv[1], sys.argv[2]
info = json.load(open(os.path.join(prefix, "bundle.json")))
with socket.socket() as s:  # a free port on loopback
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = dict(os.environ, EDGEDEPLOY_HOST="127.0.0.1", EDGEDEPLOY_PORT=str(port))
err = open(err_path, "w")
srv = subprocess.Popen([os.path.join(prefix, "run.sh"), "serve", "--quiet"], env=env, stdout=err, stderr=err)
url = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + 400  # a process start costs seconds to minutes under qemu
up = False
while time.monotonic() < deadline and srv.poll() is None:
    try:
        up = urllib.request.urlopen(url + "/health", timeout=5).status == 200
        break
    except OSError:
        time.sleep(1)
bad = 0
if up:
    for smp in info["samples"]:
        data = open(os.path.join(prefix, "samples", smp["file"]), "rb").read()
        req = urllib.request.Request(url + "/predict", data=data, method="POST", headers={"Content-Type": "image/png"})
        got = json.loads(urllib.request.urlopen(req, timeout=120).read())
        same = got["label"] == smp["label"]
        bad += not same
        print(f"  {smp['file']:<26} x86 {smp['label']:>4} ({smp['score']:.4f})   aarch64 serve "
              f"{got['label']:>4} ({got['score']:.4f}){'' if same else '   <-- differs'}")
srv.send_signal(signal.SIGTERM)
try:
    code = srv.wait(60)
except subprocess.TimeoutExpired:
    srv.kill()
    code = "killed"
ok = up and not bad
what = (f"{len(info['samples']) - bad}/{len(info['samples'])} answers equal x86's recorded ones; stopped by SIGTERM (exit {code})"
        if up else f"the server did not come up (exit {srv.returncode}): see {err_path}")
print(f"PI-CHECK {os.environ.get('TAG', 'bundle')}-serve {'PASS' if ok else 'FAIL'} run.sh serve: {what}")
sys.exit(0 if ok else 1)
PYEOF
then :; else fails=$((fails + 1)); indent < "$WORK/arm/$TAG-serve.err" | tail -n 5; fi

echo "==> [pi:bundle] one flipped byte in the model: install.sh and edge-infer must refuse it"
rm -rf "/tmp/$NAME-bad" && mkdir -p "/tmp/$NAME-bad.unpack"
(cd "/tmp/$NAME-bad.unpack" && python3 -m tarfile -e "$WORK/bundle/$NAME.tar.gz" .) && mv "/tmp/$NAME-bad.unpack/$NAME" "/tmp/$NAME-bad"
model=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["file"])' "/tmp/$NAME-bad/bundle.json" 2>/dev/null)
flip='import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0xFF; open(p, "wb").write(b)'
python3 -c "$flip" "/tmp/$NAME-bad/$model"
sh "/tmp/$NAME-bad/install.sh" /tmp/prefix-bad > "$WORK/arm/$TAG-bad-install.log" 2>&1
brc=$?
msg=$(tail -n 1 "$WORK/arm/$TAG-bad-install.log")
if [ $brc = 3 ]; then check "$TAG"-flipped-install PASS "install.sh exit 3: $msg"; else check "$TAG"-flipped-install FAIL "install.sh exit $brc: $msg"; fi
if [ $rc = 0 ]; then
    mkdir -p /tmp/flipped && cp "$PREFIX/$model" "$PREFIX/$model.json" /tmp/flipped/
    python3 -c "$flip" "/tmp/flipped/$model"
    "$PREFIX/venv/bin/edge-infer" "/tmp/flipped/$model" "$PREFIX"/samples/*.png > /dev/null 2> "$WORK/arm/$TAG-flipped-infer.err"
    erc=$?
    msg=$(tail -n 1 "$WORK/arm/$TAG-flipped-infer.err")
    if [ $erc = 2 ]; then check "$TAG"-flipped-edge-infer PASS "exit 2: $msg"; else check "$TAG"-flipped-edge-infer FAIL "exit $erc: $msg"; fi
fi
exit $fails
