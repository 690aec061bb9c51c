#!/bin/sh
# Runs INSIDE the emulated Raspberry Pi userland (Debian 12 arm64, dash; no grep/sed
# there), started by scripts/pi_emulation.sh under `env -i ... chroot`. Not run by hand.
#
# Usage: pi_guest.sh VARIANT VENV SRC WORK
#   VARIANT  litert | legacy   (legacy = tflite-runtime 2.14 + numpy<2)
#   VENV     the venv holding the installed edgedeploy wheel, e.g. /opt/pi-venv-litert
#   SRC      copy of the repo's tests/ and benchmarks/ (not the packages: those come
#            from the wheel installed in VENV)
#   WORK     shared folder: WORK/models and WORK/images in, WORK/arm/* out
# Environment: PI_PYTEST_ARGS (pytest selection), PI_THREADS (default 4, as on a Pi 4/5).
# Prints "PI-CHECK <name> PASS|FAIL|SKIP <detail>" lines that the host summarises.
# Exit status: the number of failed checks (0 = all passed).

VARIANT=$1 VENV=$2 SRC=$3 WORK=$4
PY=$VENV/bin/python
THREADS=${PI_THREADS:-4}
fails=0
check() { # name status detail
    echo "PI-CHECK $1 $2 $3"
    [ "$2" = FAIL ] && fails=$((fails + 1))
    return 0
}
indent() { while IFS= read -r line; do echo "  $line"; done; }
count_json() { n=0; while IFS= read -r line; do case $line in "{"*) n=$((n + 1)) ;; esac; done < "$1"; echo $n; }
tail_of() { tail -n "$2" "$1" | indent; }
now() { date +%s.%N; }
since() { $PY -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}s')" "$1" "$(now)"; }

case $VARIANT in
    legacy) runtimes="tflite_runtime.interpreter"; backend="--backend tflite-runtime"; patterns="*.tflite" ;;
    *) runtimes="ai_edge_litert.interpreter onnxruntime"; backend=""; patterns="*.tflite *.onnx" ;;
esac

echo "==> [pi:$VARIANT] the emulated Pi: machine, OS, Python, CPU, installed packages"
# one process: every interpreter start under qemu costs seconds
if $PY - $runtimes <<'EOF'
import importlib, importlib.metadata as md, os, platform, sys, time
print("platform.machine():", platform.machine())
print("python:", sys.version.split()[0], sys.executable)
try:
    print("os:", [l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")][0],
          "/ debian_version", open("/etc/debian_version").read().strip())
except (OSError, IndexError):
    pass
try:
    info = open("/proc/cpuinfo").read().split("\n\n")[0]
    keep = [l for l in info.splitlines() if l.split(":")[0].strip() in ("CPU implementer", "CPU part", "Features")]
    print("cpu (as qemu presents it):", "; ".join(" ".join(l.split()) for l in keep))
    sve = " sve" in info.split("Features", 1)[-1].splitlines()[0] if "Features" in info else False
    print(f"PI-CHECK cpu {'FAIL' if sve else 'PASS'} {'SVE advertised, which no Pi has (QEMU_CPU?)' if sve else 'no SVE, like a Pi'}")
    failed_cpu = sve
except (OSError, IndexError):
    failed_cpu = False
print("os.cpu_count():", os.cpu_count(), "(the host's; a Pi 4/5 has 4)")
vers = []
for n in ["edgedeploy", "numpy", "pillow", "ai-edge-litert", "onnxruntime", "tflite-runtime", "pytest"]:
    try:
        vers.append(f"{n}=={md.version(n)}")
    except md.PackageNotFoundError:
        pass
print("installed:", ", ".join(vers))
failed = int(failed_cpu)
for mod in ["numpy", "PIL.Image", "edgedeploy.runtime", *sys.argv[1:]]:
    t0 = time.perf_counter()
    try:
        m = importlib.import_module(mod)
        where = getattr(m, "__file__", "") or ""
        print(f"PI-CHECK import-{mod} PASS {time.perf_counter() - t0:.1f}s {where}")
    except Exception as e:  # noqa: BLE001 - report, the host decides
        failed += 1
        print(f"PI-CHECK import-{mod} FAIL {type(e).__name__}: {e}")
import edgedeploy.runtime
if not edgedeploy.runtime.__file__.startswith(sys.prefix):
    failed += 1
    print(f"PI-CHECK wheel-install FAIL edgedeploy.runtime comes from {edgedeploy.runtime.__file__}, not the venv's wheel")
print(f"PI-CHECK machine {'PASS' if platform.machine() == 'aarch64' else 'FAIL'} {platform.machine()}")
sys.exit(failed)
EOF
then :; else fails=$((fails + 1)); fi

echo "==> [pi:$VARIANT] TensorFlow must not be importable"
if msg=$($PY -c 'import tensorflow' 2>&1); then
    check no-tensorflow FAIL "import tensorflow succeeded"
else
    msg=$(echo "$msg" | tail -n 1)
    echo "  import tensorflow -> $msg"
    check no-tensorflow PASS "$msg"
fi

if [ -z "$PI_PYTEST_ARGS" ]; then
    check pytest SKIP "not selected for this variant (pi_emulation.sh --tests full runs it)"
else
echo "==> [pi:$VARIANT] pytest, TF-free subset: $PI_PYTEST_ARGS"
t0=$(now)
(eval "set -- $PI_PYTEST_ARGS" && cd "$SRC" && exec $PY -m pytest -p no:cacheprovider -q "$@") > "$WORK/arm/pytest-$VARIANT.log" 2>&1
rc=$?
tail_of "$WORK/arm/pytest-$VARIANT.log" 15
summary=$(tail -n 1 "$WORK/arm/pytest-$VARIANT.log" | tr -d '=')
case $rc in
    0) check pytest PASS "$summary (wall $(since "$t0"))" ;;
    5) check pytest SKIP "no test selected: $summary" ;;
    *) check pytest FAIL "exit $rc: $summary" ;;
esac
fi

echo "==> [pi:$VARIANT] edge-infer --json on the exported models"
models=""
for pat in $patterns; do
    for model in "$WORK"/models/$pat; do [ -f "$model" ] && models="$models $model"; done
done
for model in $models; do
    name=$(basename "$model")
    out="$WORK/arm/${VARIANT}__${name}.jsonl"
    t0=$(now)
    # shellcheck disable=SC2086
    if "$VENV/bin/edge-infer" "$model" "$WORK"/images/*.png --json --threads "$THREADS" $backend > "$out" 2> "$out.err"; then
        check "edge-infer-$name" PASS "$(count_json "$out") predictions (wall $(since "$t0"))"
        head -n 2 "$out" | indent
    else
        tail_of "$out.err" 5
        check "edge-infer-$name" FAIL "$(tail -n 1 "$out.err")"
    fi
done

echo "==> [pi:$VARIANT] python benchmarks/latency.py --quick --threads $THREADS $backend (emulated: timings say nothing about a real Pi)"
if [ ! -f "$SRC/benchmarks/latency.py" ]; then
    check latency SKIP "benchmarks/latency.py is not in the repo yet"
elif [ -z "$models" ]; then
    check latency SKIP "no model"
else
    t0=$(now)
    log="$WORK/arm/latency-$VARIANT.log"
    # shellcheck disable=SC2086
    if (cd "$SRC" && exec $PY benchmarks/latency.py --quick --threads "$THREADS" $backend --json "$WORK/arm/latency-$VARIANT.json" $models) > "$log" 2>&1; then
        tail_of "$log" 8
        check latency PASS "wall $(since "$t0"), report $WORK/arm/latency-$VARIANT.json"
    else
        tail_of "$log" 8
        check latency FAIL "exit status non-zero, see the log above"
    fi
fi

exit $fails
