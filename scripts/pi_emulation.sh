#!/usr/bin/env bash
# pi_emulation.sh — prove that edgedeploy's edge runtime installs and runs on a
# Raspberry Pi OS Bookworm 64-bit userland (Debian 12 arm64, Python 3.11), emulated
# with qemu-user on this x86_64 machine. See docs/raspberry-pi.md.
#
# Usage:
#   scripts/pi_emulation.sh [--check] [--board pi4|pi5] [--variant litert|legacy|all]
#                           [--models DIR] [--images DIR] [--keep-work]
#
#   --check          only tell whether emulation is possible on this machine (exit 0),
#                    or print why not (exit 3). It may mount binfmt_misc; nothing else.
#   --board          pi4 (QEMU_CPU=cortex-a72, default) or pi5 (cortex-a76). Never qemu's
#                    default "max" CPU: it advertises SVE, which no Pi has.
#   --variant        litert: the wheel with the `edge` extra (ai-edge-litert + onnxruntime,
#                    numpy 2); legacy: the wheel alone + tflite-runtime 2.14 + numpy<2,
#                    run with `edge-infer --backend tflite-runtime`; all (default): both.
#   --models DIR     test these *.tflite / *.onnx files instead of making them. By default
#                    the project's own commands make them on x86: train-model (small_cnn,
#                    digits, 2 epochs), export-model (tflite int8, onnx none).
#   --images DIR     *.png images to classify (default: digits test images written here).
#   --tests SET      the TF-free pytest run inside the Pi (litert variant): smoke (default:
#                    the backend tests on the exported fixture models, the import boundary;
#                    a few minutes under qemu), full (every tests/runtime/ and
#                    tests/bench/ file: 15+ minutes under qemu), none. The legacy
#                    variant runs edge-infer and latency.py, and pytest only with full.
#                    PI_PYTEST_ARGS overrides the selection.
#   --keep-work      keep the per-run work folder (models, images, JSON outputs).
#   --no-bundle      skip the device bundle: by default `export-model --bundle --target pi64`
#                    makes one on x86 from the int8 model, and inside the Pi the user `pi`
#                    (HOME=/home/pi, no PREFIX) runs the README's own words with NO package
#                    index: `tar xzf pi-bundle.tar.gz && pi-bundle/install.sh` (SHA256SUMS,
#                    offline venv, self-test, in place), then `~/pi-bundle/run.sh watch`
#                    classifies the dropped samples (same answers as x86), and a copy with one
#                    flipped model byte must be refused (scripts/pi_guest_bundle.sh).
#
# Steps (each a function below): preflight -> host_tools -> binfmt -> rootfs -> wheel ->
# fetch_wheels -> install_venv -> make_models -> x86_predictions -> run_in_pi -> compare.
#
# Exit codes:
#   0  all checks passed (with --check: emulation is possible here)
#   1  a check failed: inside the emulated Pi (tests, imports, edge-infer, latency), or
#      the aarch64 predictions differ from x86, or TensorFlow was importable there
#   2  usage error
#   3  emulation is not possible on this machine (not root, no binfmt_misc, no mount
#      namespace, not Debian/apt, ...): the reason is printed; CI should report a skip
#   4  set-up failed (apt/qemu install, mmdebstrap, pip download, wheel build, model
#      export): usually the network or a packaging error; the failing step is printed
#
# Environment:
#   EDGEDEPLOY_PI_CACHE   cache folder (default ${XDG_CACHE_HOME:-~/.cache}/edgedeploy/pi):
#                         the rootfs, the aarch64 wheels. Never inside the repo.
#   EDGEDEPLOY_PI_ROOTFS  the rootfs folder (default $EDGEDEPLOY_PI_CACHE/rootfs-bookworm-arm64)
#   EDGEDEPLOY_PI_MIRROR  a Debian mirror URI; default: the one this machine's apt uses
#   EDGEDEPLOY_PI_PYTHON  host Python with the project's train/export extras (default
#                         REPO/.venv/bin/python if it exists, else python3)
#   PI_PYTEST_ARGS        pytest selection inside the Pi (default below: the TF-free
#                         edge_runtime and benchmarks tests)
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS=$REPO/scripts
CACHE=${EDGEDEPLOY_PI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgedeploy/pi}
ROOTFS=${EDGEDEPLOY_PI_ROOTFS:-$CACHE/rootfs-bookworm-arm64}
if [[ -n ${EDGEDEPLOY_PI_PYTHON:-} ]]; then PYTHON=$EDGEDEPLOY_PI_PYTHON
elif [[ -x $REPO/.venv/bin/python ]]; then PYTHON=$REPO/.venv/bin/python
else PYTHON=$(command -v python3); fi
SUITE=bookworm
# base-files adds /etc/os-release and /etc/debian_version (a few KB): the guest can say what it is;
# tar and gzip run the README's own `tar xzf pi-bundle.tar.gz && pi-bundle/install.sh` as on a Pi
ROOTFS_PACKAGES=python3,python3-venv,libstdc++6,ca-certificates,dash,coreutils,base-files,tar,gzip
QEMU_MIN=8.2
# The TF-free tests run inside the Pi. Markers: tf needs TensorFlow (conftest also skips
# those where TF is absent), slow is real photos / VGG16, pi is this script's own test.
# The source-scanning boundary tests read edge_runtime/*.py & co. from a checkout, which on
# the Pi is deliberately absent (the package comes from the wheel): they skip there.
# Tests that assert wall-clock limits (an instant --help, the watch-folder timing, the
# 20 s hang limit of the crash-probe subprocess) or run thousands of requests fail or
# crawl under qemu, where every process start costs seconds: they are left out.
PYTEST_MARKS='-m "not tf and not slow and not pi" -k "not test_edge_side_never_imports_tf_train_or_export'
SMOKE_TESTS='tests/runtime/test_edge_backends.py tests/test_boundaries.py tests/export/test_tflite_metadata.py'
SMOKE_EXCLUDE=' and not probe'
FULL_TESTS='tests/runtime/test_*.py tests/bench/test_*.py tests/core/test_*.py tests/test_boundaries.py'
FULL_EXCLUDE=' and not test_help_is_instant and not test_watch_folder_waits_for_complete_files and not test_progress_bar_on_a_log and not test_2000_requests_while_50_slow_clients_trickle and not probe_contains'
PI_PYTEST_ARGS=${PI_PYTEST_ARGS:-}

MODE=run BOARD=pi4 VARIANTS="litert legacy" MODELS_DIR="" IMAGES_DIR="" KEEP_WORK=0 TESTS=smoke BUNDLE=1
BUNDLE_NAME=pi-bundle
T_START=$(date +%s)
declare -A STEP_TIME=()

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
log() { printf '%s\n' "==> $*"; }
die() { local code=$1; shift; printf 'pi_emulation: %s\n' "$*" >&2; exit "$code"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --check) MODE=check ;;
        --board) BOARD=${2:-}; shift ;;
        --board=*) BOARD=${1#*=} ;;
        --variant) VARIANTS=${2:-}; shift ;;
        --variant=*) VARIANTS=${1#*=} ;;
        --models) MODELS_DIR=${2:-}; shift ;;
        --models=*) MODELS_DIR=${1#*=} ;;
        --images) IMAGES_DIR=${2:-}; shift ;;
        --images=*) IMAGES_DIR=${1#*=} ;;
        --tests) TESTS=${2:-}; shift ;;
        --tests=*) TESTS=${1#*=} ;;
        --keep-work) KEEP_WORK=1 ;;
        --no-bundle) BUNDLE=0 ;;
        -h|--help) usage; exit 0 ;;
        *) die 2 "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
case $BOARD in pi4) QEMU_CPU=cortex-a72 ;; pi5) QEMU_CPU=cortex-a76 ;; *) die 2 "--board must be pi4 or pi5, got '$BOARD'" ;; esac
case $TESTS in smoke|full|none) ;; *) die 2 "--tests must be smoke, full or none, got '$TESTS'" ;; esac
case $VARIANTS in all) VARIANTS="litert legacy" ;; litert|legacy|"litert legacy") ;; *) die 2 "--variant must be litert, legacy or all, got '$VARIANTS'" ;; esac
[[ -z $MODELS_DIR || -d $MODELS_DIR ]] || die 2 "--models: no such folder: $MODELS_DIR"
[[ -z $IMAGES_DIR || -d $IMAGES_DIR ]] || die 2 "--images: no such folder: $IMAGES_DIR"

timed() { # timed NAME FUNCTION...: run a step, record its wall time
    local name=$1 t0 rc; shift
    t0=$(date +%s.%N)
    "$@"; rc=$?
    STEP_TIME[$name]=$(awk -v a="$t0" -v b="$(date +%s.%N)" -v c="${STEP_TIME[$name]:-0}" 'BEGIN{printf "%.1f", c+b-a}')
    return $rc
}

version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

qemu_bin() { # the qemu-aarch64 user-mode binary, if any
    local b
    for b in qemu-aarch64-static qemu-aarch64; do
        command -v "$b" >/dev/null 2>&1 && { command -v "$b"; return 0; }
    done
    return 1
}
qemu_version() { "$1" --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p' | head -n1; }

# --------------------------------------------------------------------- preflight
# Sets REASON and returns 1 when emulation cannot work on this machine.
REASON=""
NATIVE=0
preflight() {
    [[ $(uname -s) == Linux ]] || { REASON="not Linux ($(uname -s)): chroot and binfmt_misc are Linux features"; return 1; }
    [[ $(id -u) == 0 ]] || { REASON="not root (uid $(id -u)): building the rootfs, chroot, mounts and binfmt registration need root"; return 1; }
    case $(uname -m) in
        aarch64) NATIVE=1 ;;
        x86_64) ;;
        *) REASON="host architecture $(uname -m) is not supported (x86_64 with qemu, or aarch64 natively)"; return 1 ;;
    esac
    local c
    for c in chroot unshare mount env; do
        command -v $c >/dev/null 2>&1 || { REASON="'$c' is not installed"; return 1; }
    done
    [[ -x $PYTHON ]] || { REASON="no host Python at $PYTHON (set EDGEDEPLOY_PI_PYTHON)"; return 1; }
    unshare --mount --propagation private true 2>/dev/null \
        || { REASON="cannot create a mount namespace (unshare -m failed: a container without CAP_SYS_ADMIN?)"; return 1; }
    if [[ -z ${EDGEDEPLOY_PI_MIRROR:-} ]] && ! "$PYTHON" "$SCRIPTS/pi_emulation_host.py" mirrors "$SUITE" >/dev/null 2>/tmp/pi_emulation_mirror.err; then
        REASON="no Debian mirror: $(tail -n1 /tmp/pi_emulation_mirror.err) (set EDGEDEPLOY_PI_MIRROR)"; return 1
    fi
    if ! command -v mmdebstrap >/dev/null 2>&1 || ! qemu_ok; then
        command -v apt-get >/dev/null 2>&1 || { REASON="mmdebstrap or qemu-user >= $QEMU_MIN missing, and no apt-get to install them"; return 1; }
    fi
    [[ $NATIVE == 1 ]] && return 0
    # binfmt_misc: the kernel must run aarch64 ELF files through qemu, also for the
    # subprocesses the tests start (edge-infer, benchmarks), so `qemu -L` alone is not enough.
    grep -qw binfmt_misc /proc/filesystems 2>/dev/null || [[ -e /proc/sys/fs/binfmt_misc/register ]] \
        || { REASON="the kernel has no binfmt_misc support"; return 1; }
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
            || { REASON="cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc (read-only /proc or no CAP_SYS_ADMIN: an unprivileged container?)"; return 1; }
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 && ! -w /proc/sys/fs/binfmt_misc/register ]]; then
        REASON="qemu-aarch64 is not registered in binfmt_misc and /proc/sys/fs/binfmt_misc/register is not writable"; return 1
    fi
    local df_kb
    df_kb=$(mkdir -p "$CACHE" && df -Pk "$CACHE" | awk 'NR==2{print $4}')
    [[ ${df_kb:-0} -gt 1500000 ]] || { REASON="less than 1.5 GB free under $CACHE"; return 1; }
    return 0
}

qemu_ok() {
    [[ $NATIVE == 1 ]] && return 0
    local q v
    q=$(qemu_bin) || return 1
    v=$(qemu_version "$q")
    [[ -n $v ]] && version_ge "$v" "$QEMU_MIN"
}

# ------------------------------------------------------------------- host tools
MIRRORS=""
apt_mirrors() {
    if [[ -n ${EDGEDEPLOY_PI_MIRROR:-} ]]; then
        MIRRORS="deb $EDGEDEPLOY_PI_MIRROR $SUITE main"
    else
        MIRRORS=$("$PYTHON" "$SCRIPTS/pi_emulation_host.py" mirrors "$SUITE") || return 1
    fi
    MAIN_MIRROR=$(awk -v s="$SUITE" '$3 == s {print $2; exit}' <<<"$MIRRORS")
}

APT_UPDATED=0
apt_update() { [[ $APT_UPDATED == 1 ]] || { apt-get update -qq >/dev/null && APT_UPDATED=1; }; }

host_tools() {
    export DEBIAN_FRONTEND=noninteractive
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        log "installing mmdebstrap (apt)"
        apt_update && apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null \
            || { echo "apt-get install mmdebstrap failed" >&2; return 1; }
    fi
    [[ $NATIVE == 1 ]] && return 0
    if qemu_ok; then
        log "qemu: $(qemu_bin) $(qemu_version "$(qemu_bin)") (>= $QEMU_MIN)"
    else
        # Debian 12's own qemu 7.2 passes the host's x86 /proc/cpuinfo through and
        # onnxruntime segfaults on import; bookworm-backports carries qemu 10.
        . /etc/os-release
        local list=/etc/apt/sources.list.d/edgedeploy-${VERSION_CODENAME}-backports.sources
        local key=/usr/share/keyrings/debian-archive-keyring.gpg
        if [[ ${ID:-} == debian && ! -e $list ]] && ! apt-cache policy 2>/dev/null | grep -q "${VERSION_CODENAME}-backports/main"; then
            log "adding ${VERSION_CODENAME}-backports from $MAIN_MIRROR (for qemu-user >= $QEMU_MIN)"
            printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: %s\n' \
                "$MAIN_MIRROR" "$VERSION_CODENAME" "$key" > "$list"
            APT_UPDATED=0
        fi
        apt_update || { echo "apt-get update failed" >&2; return 1; }
        log "installing qemu-user-static from ${VERSION_CODENAME}-backports (apt)"
        apt-get install -y -qq --no-install-recommends -t "${VERSION_CODENAME}-backports" qemu-user-static binfmt-support >/dev/null \
            || apt-get install -y -qq --no-install-recommends qemu-user-static binfmt-support >/dev/null \
            || { echo "apt-get install qemu-user-static failed" >&2; return 1; }
        qemu_ok || { echo "qemu-user is still older than $QEMU_MIN: $(qemu_bin) $(qemu_version "$(qemu_bin)")" >&2; return 1; }
        log "qemu: $(qemu_bin) $(qemu_version "$(qemu_bin)")"
    fi
    command -v update-binfmts >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends binfmt-support >/dev/null || true
}

# ----------------------------------------------------------------------- binfmt
BINFMT_INTERP=""
BINFMT_FIXED=0
binfmt() {
    [[ $NATIVE == 1 ]] && return 0
    local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
    [[ -e /proc/sys/fs/binfmt_misc/register ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || return 1
    if [[ ! -e $entry ]] || ! grep -q '^enabled' "$entry"; then
        if command -v update-binfmts >/dev/null 2>&1; then
            update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
        fi
        if [[ ! -e $entry ]] && command -v systemd-binfmt >/dev/null 2>&1; then
            /usr/lib/systemd/systemd-binfmt 2>/dev/null || systemd-binfmt 2>/dev/null || true
        fi
        if [[ ! -e $entry && -e /usr/lib/binfmt.d/qemu-aarch64.conf ]]; then
            grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register 2>/dev/null || true
        fi
        if [[ ! -e $entry ]]; then  # register by hand: the standard aarch64 ELF magic, flags F (fix binary) + C
            local q; q=$(qemu_bin) || return 1
            printf '%s' ":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$q:FC" \
                > /proc/sys/fs/binfmt_misc/register || return 1
        fi
        [[ -e $entry ]] && echo 1 > "$entry" 2>/dev/null
    fi
    grep -q '^enabled' "$entry" || { echo "binfmt_misc entry qemu-aarch64 is not enabled" >&2; return 1; }
    BINFMT_INTERP=$(awk '$1 == "interpreter" {print $2}' "$entry")
    grep -q '^flags:.*F' "$entry" && BINFMT_FIXED=1
    log "binfmt_misc: qemu-aarch64 -> $BINFMT_INTERP (flags: $(awk '$1 == "flags:" {print $2}' "$entry")), QEMU_CPU=$QEMU_CPU ($BOARD)"
}

# ----------------------------------------------------------------------- rootfs
rootfs() {
    local stamp=$ROOTFS/.edgedeploy-rootfs key
    key="suite=$SUITE arch=arm64 variant=extract include=$ROOTFS_PACKAGES"
    if [[ -f $stamp && $(head -n1 "$stamp") == "$key" && -x $ROOTFS/usr/bin/python3 ]]; then
        log "rootfs: cached at $ROOTFS ($(du -sm "$ROOTFS" 2>/dev/null | cut -f1) MB)"
        return 0
    fi
    log "rootfs: mmdebstrap arm64 $SUITE into $ROOTFS (mirrors from apt: $(awk '{print $2}' <<<"$MIRRORS" | sort -u | tr '\n' ' '))"
    rm -rf "$ROOTFS.new" && mkdir -p "$(dirname "$ROOTFS")"
    mmdebstrap --quiet --arch=arm64 --variant=extract --include="$ROOTFS_PACKAGES" \
        "$SUITE" "$ROOTFS.new" "$MIRRORS" || { echo "mmdebstrap failed" >&2; return 1; }
    local d
    for d in proc sys dev tmp run mnt/work opt/edgedeploy-src root; do mkdir -p "$ROOTFS.new/$d"; done
    chmod 1777 "$ROOTFS.new/tmp"
    # --variant=extract unpacks without configuring: give it the users a configured system has
    [[ -s $ROOTFS.new/etc/passwd ]] || cp "$ROOTFS.new/usr/share/base-passwd/passwd.master" "$ROOTFS.new/etc/passwd" 2>/dev/null \
        || echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOTFS.new/etc/passwd"
    [[ -s $ROOTFS.new/etc/group ]] || cp "$ROOTFS.new/usr/share/base-passwd/group.master" "$ROOTFS.new/etc/group" 2>/dev/null \
        || echo 'root:x:0:' > "$ROOTFS.new/etc/group"
    [[ -e $ROOTFS.new/bin/sh ]] || ln -s dash "$ROOTFS.new/bin/sh"
    echo "$key" > "$ROOTFS.new/.edgedeploy-rootfs"
    rm -rf "$ROOTFS" && mv "$ROOTFS.new" "$ROOTFS"
    log "rootfs: $(du -sm "$ROOTFS" | cut -f1) MB"
}

# pi_run CMD...: run CMD inside the emulated Pi: a private mount namespace (nothing
# leaks to the host's mount table, everything is unmounted when it exits), chroot
# under `env -i` so the host environment does not leak in.
pi_run() {
    local qemu_mount=""
    if [[ $NATIVE == 0 && $BINFMT_FIXED == 0 && -n $BINFMT_INTERP ]]; then
        qemu_mount=$BINFMT_INTERP  # without the F flag the interpreter must exist inside the chroot
    fi
    unshare --mount --propagation private -- /bin/bash -c '
        set -e
        R=$1 W=$2 S=$3 Q=$4; shift 4
        mount -t proc proc "$R/proc"
        mount --bind /dev "$R/dev"
        mount -t sysfs -o ro sysfs "$R/sys"
        mount -t tmpfs tmpfs "$R/tmp"
        mount --bind "$W" "$R/mnt/work"
        mount --bind "$S" "$R/opt/edgedeploy-src"
        if [ -n "$Q" ]; then mkdir -p "$R$(dirname "$Q")"; touch "$R$Q"; mount --bind "$Q" "$R$Q"; fi
        exec "$@"
    ' pi_run "$ROOTFS" "$WORK" "$WORK/src" "$qemu_mount" \
        env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root USER=root LANG=C.UTF-8 TERM=dumb \
        QEMU_CPU="$QEMU_CPU" PI_PYTEST_ARGS="${GUEST_PYTEST_ARGS:-}" EDGEDEPLOY_TEST_CACHE=/mnt/work/test-models \
        "$(command -v chroot)" "$ROOTFS" "$@"
}

# ------------------------------------------------------------------------ wheel
WHEEL=""
wheel() {
    # Build from a copy of the tracked + untracked-not-ignored files, so the checkout
    # gets no build/ or *.egg-info, and a fresh clone builds the same wheel.
    rm -rf "$WORK/build-src" && mkdir -p "$WORK/build-src" "$WORK/dist"
    if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
            | tar --null -T - -cf -) | tar -xf - -C "$WORK/build-src"
    else
        tar -C "$REPO" --exclude=.venv --exclude=.git -cf - . | tar -xf - -C "$WORK/build-src"
    fi
    if "$PYTHON" -c 'import build' 2>/dev/null; then
        log "wheel: python -m build --wheel"
        "$PYTHON" -m build --wheel --outdir "$WORK/dist" "$WORK/build-src" > "$WORK/build.log" 2>&1
    else
        log "wheel: pip wheel (the host Python has no 'build' module)"
        "$PYTHON" -m pip wheel --no-deps -w "$WORK/dist" "$WORK/build-src" > "$WORK/build.log" 2>&1
    fi || { tail -n 20 "$WORK/build.log" >&2; echo "building the wheel failed" >&2; return 1; }
    WHEEL=$(ls "$WORK"/dist/edgedeploy-*.whl 2>/dev/null | head -n1)
    [[ -n $WHEEL ]] || { echo "no edgedeploy wheel was built" >&2; return 1; }
    log "wheel: $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KB)"
}

# ---------------------------------------------------------------- aarch64 wheels
pip_platform_args() {
    # pip does not expand the newer manylinux tags by itself: list each one.
    local v args="--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none"
    args+=" --platform manylinux2014_aarch64"
    for v in $(seq 17 36); do args+=" --platform manylinux_2_${v}_aarch64"; done
    args+=" --platform linux_aarch64"
    echo "$args"
}

variant_requirements() { # the requirements (besides the wheel) of a variant
    case $1 in
        litert) echo "pytest" ;;                                     # + the wheel[edge]
        legacy) echo "tflite-runtime==2.14.* numpy<2 pytest" ;;      # + the wheel alone
    esac
}
wheel_spec() { case $1 in litert) echo "${WHEEL}[edge]" ;; legacy) echo "$WHEEL" ;; esac; }

fetch_wheels() { # fetch_wheels VARIANT: aarch64 wheels into a cache keyed by what is asked
    local variant=$1 key dir
    # The host pip config (constraints, local indexes, find-links) is for this machine's
    # own Python; PIP_CONFIG_FILE=/dev/null keeps it out, PIP_* environment still applies.
    key=$( { "$PYTHON" "$SCRIPTS/pi_emulation_host.py" wheel-requires "$WHEEL"; variant_requirements "$variant"; pip_platform_args; } | sha256sum | cut -c1-16)
    dir=$CACHE/wheels/$variant-$key
    if [[ -f $dir/.complete ]]; then
        log "[$variant] aarch64 wheels: cached ($(ls "$dir"/*.whl | wc -l) wheels in $dir)"
    else
        log "[$variant] aarch64 wheels: pip download (host pip, cp311 manylinux aarch64)"
        rm -rf "$dir" && mkdir -p "$dir"
        # shellcheck disable=SC2046
        PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT="" PIP_FIND_LINKS="" "$PYTHON" -m pip download -q --disable-pip-version-check \
            $(pip_platform_args) -d "$dir" "$(wheel_spec "$variant")" $(variant_requirements "$variant") \
            > "$dir.log" 2>&1 || { tail -n 15 "$dir.log" >&2; echo "pip download for $variant failed" >&2; return 1; }
        rm -f "$dir"/edgedeploy-*.whl
        touch "$dir/.complete"
        log "[$variant] $(ls "$dir"/*.whl | wc -l) wheels, $(du -sm "$dir" | cut -f1) MB"
    fi
    WHEELDIR[$variant]=$dir
}
declare -A WHEELDIR=()

pip_target() { # pip_target VARIANT SITE ARGS...: the host pip installs aarch64 wheels into SITE
    local variant=$1 site=$2; shift 2
    # shellcheck disable=SC2046
    PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT="" "$PYTHON" -m pip install -q --disable-pip-version-check --no-index \
        --find-links "${WHEELDIR[$variant]}" --find-links "$(dirname "$WHEEL")" $(pip_platform_args) \
        --target "$site" "$@" >> "$WORK/pip-install-$variant.log" 2>&1 \
        || { tail -n 15 "$WORK/pip-install-$variant.log" >&2; return 1; }
}

install_venv() { # install_venv VARIANT: a venv inside the rootfs holding the wheel and its aarch64 deps
    local variant=$1 venv=/opt/pi-venv-$1 site key f
    site=$ROOTFS$venv/lib/python3.11/site-packages
    key=$(basename "${WHEELDIR[$variant]}")
    if [[ -f $ROOTFS$venv/.deps-key && $(cat "$ROOTFS$venv/.deps-key") == "$key" && -d $site ]]; then
        # Same dependency set as last run: keep them, replace only edgedeploy itself
        # (pip --target cannot uninstall: remove the files its RECORD lists).
        for f in "$site"/edgedeploy-*.dist-info/RECORD; do
            [[ -f $f ]] || continue
            (cd "$site" && cut -d, -f1 "$f" | while IFS= read -r p; do [[ $p == ../* || $p == /* ]] || rm -f -- "$p"; done)
            rm -rf "$(dirname "$f")"
        done
        find "$site" -depth -type d -empty -delete 2>/dev/null
        rm -f "$ROOTFS$venv"/bin/{edge-infer,train-model,export-model}
        pip_target "$variant" "$site" --no-deps --upgrade "$WHEEL" || return 1
        log "[$variant] $venv: dependencies cached ($key), edgedeploy replaced by $(basename "$WHEEL")"
    else
        rm -rf "${ROOTFS:?}$venv"
        # the Pi's own python3 makes the venv, as a user would; pip is not needed inside
        pi_run /usr/bin/python3 -m venv --without-pip "$venv" || { echo "python3 -m venv failed inside the Pi" >&2; return 1; }
        [[ -d $site ]] || { echo "unexpected venv layout: no $site" >&2; return 1; }
        # shellcheck disable=SC2046
        pip_target "$variant" "$site" "$(wheel_spec "$variant")" $(variant_requirements "$variant") || return 1
        echo "$key" > "$ROOTFS$venv/.deps-key"
        log "[$variant] $venv: $(find "$site" -maxdepth 1 -name '*.dist-info' | wc -l) distributions installed ($(du -sm "$ROOTFS$venv" | cut -f1) MB)"
    fi
    # `pip --target` writes console scripts into SITE/bin with the HOST python in their
    # #! line: move them to the venv's bin/ and point them at the venv's python.
    if [[ -d $site/bin ]]; then
        for f in "$site"/bin/*; do
            [[ -f $f ]] || continue
            if [[ $(head -c 2 "$f") == '#!' ]]; then sed -i "1s|^#!.*python.*$|#!$venv/bin/python|" "$f"; fi
            mv -f "$f" "$ROOTFS$venv/bin/"
        done
        rm -rf "${site:?}/bin"
    fi
    [[ -x $ROOTFS$venv/bin/edge-infer ]] || { echo "the wheel installed no edge-infer console script" >&2; return 1; }
}

# ------------------------------------------------------------------------ models
host_cli() { # host_cli MODULE ARGS...: the project's console script, from the checkout, on x86
    local mod=$1; shift
    (cd "$WORK" && PYTHONPATH=$REPO TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c \
        "import sys; from $mod import main; sys.exit(main(sys.argv[1:]))" "$@")
}

make_models() {
    mkdir -p "$WORK/models" "$WORK/images"
    if [[ -n $IMAGES_DIR ]]; then
        cp "$IMAGES_DIR"/*.png "$WORK/images/" || { echo "no *.png in $IMAGES_DIR" >&2; return 1; }
    else
        PYTHONPATH=$REPO "$PYTHON" "$SCRIPTS/pi_emulation_host.py" images "$WORK/images" 10 || return 1
    fi
    if [[ -n $MODELS_DIR ]]; then
        log "models: from $MODELS_DIR"
        cp "$MODELS_DIR"/*.tflite "$MODELS_DIR"/*.onnx "$WORK/models/" 2>/dev/null
        cp "$MODELS_DIR"/*.json "$WORK/models/" 2>/dev/null
    else
        log "models: train-model --model small_cnn --dataset digits --epochs 2; export-model tflite int8 + onnx none"
        host_cli edgedeploy.train.cli --model small_cnn --dataset digits --epochs 2 --output "$WORK/run" > "$WORK/train.log" 2>&1 \
            || { tail -n 20 "$WORK/train.log" >&2; echo "train-model failed" >&2; return 1; }
        host_cli edgedeploy.export.cli "$WORK/run" --format tflite --quantize int8 --output "$WORK/models" > "$WORK/export-tflite.log" 2>&1 \
            || { tail -n 20 "$WORK/export-tflite.log" >&2; echo "export-model --format tflite --quantize int8 failed" >&2; return 1; }
        host_cli edgedeploy.export.cli "$WORK/run" --format onnx --quantize none --output "$WORK/models" > "$WORK/export-onnx.log" 2>&1 \
            || { tail -n 20 "$WORK/export-onnx.log" >&2; echo "export-model --format onnx failed" >&2; return 1; }
    fi
    local n; n=$(ls "$WORK"/models/*.tflite "$WORK"/models/*.onnx 2>/dev/null | wc -l)
    [[ $n -gt 0 ]] || { echo "no .tflite/.onnx model to test" >&2; return 1; }
    log "models: $(cd "$WORK/models" && ls *.tflite *.onnx 2>/dev/null | tr '\n' ' ')"
}

x86_predictions() {
    mkdir -p "$WORK/x86"
    local m name
    for m in "$WORK"/models/*.tflite "$WORK"/models/*.onnx; do
        [[ -f $m ]] || continue
        name=$(basename "$m")
        host_cli edgedeploy.runtime.cli "$m" "$WORK"/images/*.png --json > "$WORK/x86/$name.jsonl" 2> "$WORK/x86/$name.err" \
            || { tail -n 5 "$WORK/x86/$name.err" >&2; echo "edge-infer on x86 failed for $name" >&2; return 1; }
        log "x86 edge-infer $name: $(grep -c '^{' "$WORK/x86/$name.jsonl") predictions"
    done
}

test_fixtures() { # the model files the TF-free tests read, built with TF here (see the host helper)
    mkdir -p "$WORK/test-models"
    EDGEDEPLOY_TEST_CACHE=${EDGEDEPLOY_TEST_CACHE:-$HOME/.cache/edgedeploy/test-models} \
        "$PYTHON" "$SCRIPTS/pi_emulation_host.py" test-fixtures "$REPO" "$WORK/test-models" 2> "$WORK/test-fixtures.log" \
        | while IFS= read -r l; do log "$l"; done
    grep -h 'failed' "$WORK/test-fixtures.log" >&2
    return 0
}

make_bundle() { # the device bundle, made on x86 by the project's own command (export/bundle.py)
    local model run=$WORK/run
    model=$(ls "$WORK"/models/*.tflite 2>/dev/null | head -n1)
    [[ -n $model ]] || { echo "no .tflite model to bundle" >&2; return 1; }
    [[ -d $run ]] || run=$WORK/models
    mkdir -p "$WORK/bundle"
    log "bundle: export-model --model $(basename "$model") --bundle $BUNDLE_NAME --target pi64 (aarch64 wheels, offline install)"
    # the wheel built above; the aarch64 wheels already fetched are offered first (pip's cache does the rest)
    ( export EDGEDEPLOY_BUNDLE_WHEEL=$WHEEL PIP_FIND_LINKS="${WHEELDIR[litert]:-}"
      host_cli edgedeploy.export.cli "$run" --model "$model" --bundle "$WORK/bundle/$BUNDLE_NAME" --target pi64 ) > "$WORK/bundle.log" 2>&1 \
        || { tail -n 15 "$WORK/bundle.log" >&2; echo "export-model --bundle failed" >&2; return 1; }
    log "$(tail -n 1 "$WORK/bundle.log")"
    make_bundle_nchw
}

make_bundle_nchw() { # issue 21: a PyTorch-style NCHW ONNX (made from the digits run's float ONNX) -> int8 -> bundle
    local src=$WORK/models/model_float32.onnx dir=$WORK/nchw
    [[ -f $src ]] || { log "bundle (NCHW): skipped, no model_float32.onnx"; return 0; }
    mkdir -p "$dir"
    PYTHONPATH=$REPO "$PYTHON" "$SCRIPTS/pi_emulation_host.py" nchw "$src" "$dir/model_nchw.onnx" "$dir/digits" 12 > "$dir/nchw.log" 2>&1 \
        || { tail -n 5 "$dir/nchw.log" >&2; echo "making the NCHW ONNX failed" >&2; return 1; }
    log "bundle (NCHW): export-model model_nchw.onnx --labels 0..9 --normalize 0-255 --calibration-data digits/ --quantize int8 --select smallest --bundle $BUNDLE_NAME-nchw"
    ( export EDGEDEPLOY_BUNDLE_WHEEL=$WHEEL PIP_FIND_LINKS="${WHEELDIR[litert]:-}"
      host_cli edgedeploy.export.cli "$dir/model_nchw.onnx" --labels 0,1,2,3,4,5,6,7,8,9 --normalize 0-255 \
        --calibration-data "$dir/digits" --calibration-samples 40 --quantize int8 --select smallest --output "$dir/out" \
        --bundle "$WORK/bundle/$BUNDLE_NAME-nchw" --target pi64 ) > "$WORK/bundle-nchw.log" 2>&1 \
        || { tail -n 15 "$WORK/bundle-nchw.log" >&2; echo "export-model (NCHW ONNX) --bundle failed" >&2; return 1; }
    log "$(tail -n 1 "$WORK/bundle-nchw.log")"
}

# ------------------------------------------------------------------ run in the Pi
stage_sources() { # the tests and benchmark scripts (not the packages: those come from the wheel)
    rm -rf "${WORK:?}"/src/* && mkdir -p "$WORK/src" "$WORK/arm"
    local p
    for p in tests benchmarks pyproject.toml; do
        [[ -e $REPO/$p ]] && cp -r "$REPO/$p" "$WORK/src/"
    done
    cp "$SCRIPTS/pi_guest.sh" "$WORK/src/pi_guest.sh"
    cp "$SCRIPTS/pi_guest_bundle.sh" "$WORK/src/pi_guest_bundle.sh"
    local files
    if [[ -z $PI_PYTEST_ARGS ]]; then
        case $TESTS in
            smoke) PI_PYTEST_ARGS="$PYTEST_MARKS$SMOKE_EXCLUDE\" $SMOKE_TESTS" ;;
            full) files=$(cd "$WORK/src" && ls $FULL_TESTS 2>/dev/null | tr '\n' ' ')
                  PI_PYTEST_ARGS="$PYTEST_MARKS$FULL_EXCLUDE\" $files" ;;
        esac
    fi
    find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
}

GUEST_RC=()
run_in_pi() { # run_in_pi VARIANT
    local variant=$1 rc
    log "[$variant] inside the emulated Pi ($BOARD, QEMU_CPU=$QEMU_CPU, env -i, chroot)"
    GUEST_PYTEST_ARGS=$PI_PYTEST_ARGS
    [[ $variant == legacy && $TESTS != full ]] && GUEST_PYTEST_ARGS=""
    pi_run /bin/sh /opt/edgedeploy-src/pi_guest.sh "$variant" "/opt/pi-venv-$variant" /opt/edgedeploy-src /mnt/work \
        2>&1 | tee "$WORK/arm/guest-$variant.log"
    rc=${PIPESTATUS[0]}
    GUEST_RC+=("$variant=$rc")
    return 0
}

run_bundle_in_pi() {
    local rc
    log "[bundle] inside the emulated Pi: unpack, install.sh with no package index, self-test, run.sh watch, flipped byte"
    pi_run /bin/sh /opt/edgedeploy-src/pi_guest_bundle.sh /mnt/work "$BUNDLE_NAME" 2>&1 | tee "$WORK/arm/guest-bundle.log"
    rc=${PIPESTATUS[0]}
    GUEST_RC+=("bundle=$rc")
    if [[ -f $WORK/bundle/$BUNDLE_NAME-nchw.tar.gz ]]; then  # issue 21: the NCHW int8 ONNX, same checks
        log "[bundle-nchw] the NCHW int8 ONNX bundle: the same install, self-test, watch, serve and flipped-byte checks"
        pi_run /bin/sh /opt/edgedeploy-src/pi_guest_bundle.sh /mnt/work "$BUNDLE_NAME-nchw" bundle-nchw 2>&1 | tee "$WORK/arm/guest-bundle-nchw.log"
        rc=${PIPESTATUS[0]}
        GUEST_RC+=("bundle-nchw=$rc")
    fi
    return 0
}

compare() {
    log "predictions: x86 vs emulated aarch64 (same model, same images)"
    "$PYTHON" "$SCRIPTS/pi_emulation_host.py" compare "$WORK/x86" "$WORK/arm"
}

# ----------------------------------------------------------------------- summary
summary() {
    local total=$(( $(date +%s) - T_START )) k
    echo
    log "summary"
    for k in $VARIANTS bundle bundle-nchw; do
        [[ -f $WORK/arm/guest-$k.log ]] || continue
        grep '^PI-CHECK' "$WORK/arm/guest-$k.log" | while read -r _ name st detail; do
            printf '  %-4s [%s] %s: %s\n' "$st" "$k" "$name" "$detail"
        done
    done
    printf '  timings:'
    for k in host_tools binfmt rootfs wheel fetch_wheels install models x86 fixtures pi bundle pi_bundle compare; do
        [[ -n ${STEP_TIME[$k]:-} ]] && printf ' %s=%ss' "$k" "${STEP_TIME[$k]}"
    done
    printf ' total=%ss\n' "$total"
}

# -------------------------------------------------------------------------- main
main() {
    if ! preflight; then
        echo "pi_emulation: emulation is not possible here: $REASON"
        exit 3
    fi
    if [[ $MODE == check ]]; then
        echo "pi_emulation: emulation is possible here (root, binfmt_misc, mount namespaces$([[ $NATIVE == 1 ]] && echo ', native aarch64'))"
        exit 0
    fi
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock -w 1800 9 || die 4 "another pi_emulation run holds $CACHE/.lock"
    WORK=$(mktemp -d "$CACHE/work.XXXXXX") && mkdir -p "$WORK/src" "$WORK/arm"
    [[ $KEEP_WORK == 1 ]] || trap 'rm -rf "$WORK"' EXIT
    log "repo $REPO; cache $CACHE; work $WORK; host python $PYTHON"

    apt_mirrors || die 4 "cannot read the Debian mirrors from the apt config"
    timed host_tools host_tools || die 4 "step host_tools failed"
    timed binfmt binfmt || die 3 "cannot register qemu-aarch64 with binfmt_misc"
    timed rootfs rootfs || die 4 "step rootfs failed"
    timed wheel wheel || die 4 "step wheel failed"
    local v
    for v in $VARIANTS; do timed fetch_wheels fetch_wheels "$v" || die 4 "step fetch_wheels ($v) failed"; done
    local t0; t0=$(date +%s.%N)
    for v in $VARIANTS; do install_venv "$v" || die 4 "step install_venv ($v) failed"; done
    STEP_TIME[install]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    timed models make_models || die 4 "step make_models failed"
    timed x86 x86_predictions || die 1 "edge-infer failed on x86"
    timed fixtures test_fixtures
    if [[ $BUNDLE == 1 ]]; then timed bundle make_bundle || die 4 "step make_bundle failed"; fi
    stage_sources
    t0=$(date +%s.%N)
    for v in $VARIANTS; do run_in_pi "$v"; done
    STEP_TIME[pi]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    if [[ $BUNDLE == 1 ]]; then timed pi_bundle run_bundle_in_pi; fi
    local crc=0
    timed compare compare || crc=1
    summary
    local bad=0 r
    for r in "${GUEST_RC[@]}"; do [[ ${r#*=} == 0 ]] || bad=1; done
    if [[ $bad == 0 && $crc == 0 ]]; then
        log "PASS: the edgedeploy wheel runs on the emulated Raspberry Pi ($BOARD, $VARIANTS) with the same predictions as x86"
        exit 0
    fi
    log "FAIL: guest exit codes ${GUEST_RC[*]}; predictions $([[ $crc == 0 ]] && echo match || echo differ)"
    exit 1
}

main
