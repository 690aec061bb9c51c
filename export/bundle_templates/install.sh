#!/bin/sh
# install.sh [PREFIX] [--service watch|serve] [--user NAME] [--enable-service] [--no-selftest]
#
# Installs this edgedeploy bundle (@NAME@) into PREFIX (default: this folder, in place,
# so `tar xzf @NAME@.tar.gz && @NAME@/install.sh` works for any user): checks the machine
# and Python, checks every file against SHA256SUMS, makes a venv with the system python3,
# installs @INSTALL_FROM@, then runs the self-test: classifies the bundled sample images
# and compares them with the answers recorded when the bundle was made.
#
# Exit codes: 0 installed and self-test passed; 2 wrong machine, Python or
# argument; 3 a file does not match SHA256SUMS; 4 the self-test answers differ;
# 1 another failure (venv, pip).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
NAME='@NAME@'
MACHINE='@MACHINE@'
PYVER='@PYTHON@'
OFFLINE='@OFFLINE@'
REQUIREMENT='@REQUIREMENT@'
MODEL='@MODEL@'
SERVICE='@SERVICE@'
PREFIX="" RUN_USER="" ENABLE=0 SELFTEST=1
die() { code=$1; shift; echo "install.sh: error: $*" >&2; exit "$code"; }
while [ $# -gt 0 ]; do
    case $1 in
        --service) SERVICE=${2:-}; shift ;;
        --service=*) SERVICE=${1#*=} ;;
        --user) RUN_USER=${2:-}; shift ;;
        --user=*) RUN_USER=${1#*=} ;;
        --enable-service) ENABLE=1 ;;
        --no-selftest) SELFTEST=0 ;;
        -h|--help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) die 2 "unknown option $1 (see --help)" ;;
        *) [ -z "$PREFIX" ] || die 2 "Received a second PREFIX '$1', expected one"; PREFIX=$1 ;;
    esac
    shift
done
case $SERVICE in watch|serve) ;; *) die 2 "Received --service '$SERVICE', expected watch or serve" ;; esac
# No PREFIX: install in place, into the folder the tarball unpacked (needs neither $HOME nor a user name).
[ -n "$PREFIX" ] || PREFIX=$HERE

# 1. the machine and the Python this bundle was made for
got=$(uname -m)
[ "$got" = "$MACHINE" ] || die 2 "this bundle is for $MACHINE, but uname -m says $got (make one with export-model --target)"
command -v python3 >/dev/null 2>&1 || die 2 "python3 not found; install the system Python $PYVER (apt install python3 python3-venv)"
pyv=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$OFFLINE" = 1 ]; then
    [ "$pyv" = "$PYVER" ] || die 2 "this bundle's wheels are for Python $PYVER, but python3 is $pyv (make one with --no-wheels to install from the index)"
else
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die 2 "edgedeploy needs Python >= 3.11, python3 is $pyv"
fi

# 2. every file against SHA256SUMS
python3 - "$HERE" "$NAME" <<'PYEOF' || exit $?
import hashlib, os, sys
root, bundle = sys.argv[1], sys.argv[2]
listed = {}
with open(os.path.join(root, "SHA256SUMS")) as f:
    for line in f:
        digest, _, name = line.rstrip("\n").partition("  ")
        listed[name] = digest
for name, digest in sorted(listed.items()):
    path = os.path.join(root, name)
    h = hashlib.sha256()
    try:
        with open(path, "rb") as g:
            for block in iter(lambda: g.read(1 << 20), b""):
                h.update(block)
    except OSError:
        print(f"install.sh: error: {name} is listed in SHA256SUMS but missing; refusing to install", file=sys.stderr)
        sys.exit(3)
    if h.hexdigest() != digest:
        print(f"install.sh: error: {name} does not match SHA256SUMS (damaged or changed); refusing to install", file=sys.stderr)
        sys.exit(3)
for dirpath, _, files in os.walk(root):
    for fn in files:
        rel = os.path.relpath(os.path.join(dirpath, fn), root)
        # what an install in place adds (install.sh step 3-4) is not part of the bundle
        made_here = rel in ("service.env", bundle + ".service") or rel.startswith(
            ("venv" + os.sep, "inbox" + os.sep, "__pycache__"))
        if rel != "SHA256SUMS" and rel not in listed and not made_here:
            print(f"install.sh: error: {rel} is not listed in SHA256SUMS; refusing to install", file=sys.stderr)
            sys.exit(3)
print(f"install.sh: {len(listed)} files match SHA256SUMS")
PYEOF

# 3. a venv with the system python3, the project's wheel and its runtime
mkdir -p "$PREFIX" 2>/dev/null || die 2 "cannot create PREFIX $PREFIX; pass a folder you can write to: $0 PREFIX"
PREFIX=$(cd "$PREFIX" && pwd -P)
[ -w "$PREFIX" ] || die 2 "cannot write to $PREFIX; pass a folder you can write to: $0 PREFIX"
if [ "$PREFIX" = "$(cd "$HERE" && pwd -P)" ]; then
    echo "install.sh: installing in place, in $PREFIX"
else
    echo "install.sh: installing into $PREFIX"
    for f in "$MODEL" "$MODEL.json" run.sh selftest.py bundle.json README.md; do cp "$HERE/$f" "$PREFIX/"; done
    rm -rf "$PREFIX/samples" && cp -r "$HERE/samples" "$PREFIX/samples"
fi
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv" || die 1 "python3 -m venv failed (apt install python3-venv)"
if [ "$OFFLINE" = 1 ]; then
    "$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --find-links "$HERE/wheels" "$REQUIREMENT" \
        || die 1 "pip install from $HERE/wheels failed"
else
    "$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check --find-links "$HERE/wheels" "$REQUIREMENT" \
        || die 1 "pip install from the package index failed (this bundle was made with --no-wheels: it needs a network)"
fi

# 4. the service settings, the unit file
mkdir -p "$PREFIX/inbox"
cat > "$PREFIX/service.env" <<ENVEOF
EDGEDEPLOY_SERVICE=$SERVICE
EDGEDEPLOY_WATCH_DIR=$PREFIX/inbox
EDGEDEPLOY_HOST=127.0.0.1
EDGEDEPLOY_PORT=8080
ENVEOF
# The service never runs as root: --user NAME, else the sudo caller, else the user running this
# (by name, or by number where `id -un` cannot name it: a minimal root filesystem, a container's
# arbitrary UID), else a systemd DynamicUser for root.
if [ -z "$RUN_USER" ]; then
    RUN_USER=${SUDO_USER:-}
    [ -n "$RUN_USER" ] || RUN_USER=$(id -un 2>/dev/null) || RUN_USER=""
    [ -n "$RUN_USER" ] || RUN_USER=$(id -u)
fi
if [ "$RUN_USER" = root ] || [ "$RUN_USER" = 0 ]; then USER_LINE="DynamicUser=yes"; else USER_LINE="User=$RUN_USER"; fi
python3 -c 'import sys; t = open(sys.argv[1]).read(); open(sys.argv[2], "w").write(t.replace("@PREFIX@", sys.argv[3]).replace("@USER_LINE@", sys.argv[4]))' \
    "$HERE/$NAME.service.in" "$PREFIX/$NAME.service" "$PREFIX" "$USER_LINE"
chmod +x "$PREFIX/run.sh"

# 5. the self-test: the same answers as when the bundle was made
if [ "$SELFTEST" = 1 ]; then
    "$PREFIX/venv/bin/python" "$PREFIX/selftest.py" "$PREFIX" || { rc=$?; [ $rc = 4 ] || rc=1; echo "install.sh: error: the self-test failed (exit $rc)" >&2; exit $rc; }
fi

if [ "$ENABLE" = 1 ]; then
    [ "$(id -u)" = 0 ] || die 2 "--enable-service needs root (sudo)"
    [ "$RUN_USER" = root ] || chown -R "$RUN_USER" "$PREFIX/inbox"
    cp "$PREFIX/$NAME.service" "/etc/systemd/system/$NAME.service"
    systemctl daemon-reload && systemctl enable --now "$NAME.service"
    echo "install.sh: service $NAME enabled ($SERVICE, $USER_LINE)"
else
    echo "install.sh: done. Run it: $PREFIX/run.sh $SERVICE   (as a service: sudo cp $PREFIX/$NAME.service /etc/systemd/system/ && sudo systemctl enable --now $NAME)"
fi
