#!/bin/sh
# run.sh [watch|serve] [EDGE-INFER FLAGS...]: run the bundled model as a service, in the foreground.
#   watch  classify every new image in $EDGEDEPLOY_WATCH_DIR (default PREFIX/inbox), one JSON line each
#   serve  POST /predict with image bytes on $EDGEDEPLOY_HOST:$EDGEDEPLOY_PORT (default 127.0.0.1:8080)
# The default mode and settings are in PREFIX/service.env (written by install.sh); the environment overrides them.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# PREFIX/service.env holds the defaults; a variable already set in the environment wins.
if [ -f "$HERE/service.env" ]; then
    while IFS='=' read -r key value; do
        case $key in EDGEDEPLOY_*) eval "[ -n \"\${$key+x}\" ] || export $key=\"\$value\"" ;; esac
    done < "$HERE/service.env"
fi
MODE=${EDGEDEPLOY_SERVICE:-@SERVICE@}
case ${1:-} in watch|serve) MODE=$1; shift ;; esac
MODEL="$HERE/@MODEL@"
case $MODE in
    watch) mkdir -p "${EDGEDEPLOY_WATCH_DIR:-$HERE/inbox}"
           exec "$HERE/venv/bin/edge-infer" "$MODEL" --watch "${EDGEDEPLOY_WATCH_DIR:-$HERE/inbox}" --json "$@" ;;
    serve) exec "$HERE/venv/bin/edge-infer" "$MODEL" --serve --host "${EDGEDEPLOY_HOST:-127.0.0.1}" --port "${EDGEDEPLOY_PORT:-8080}" "$@" ;;
    *) echo "run.sh: error: Received mode '$MODE', expected watch or serve" >&2; exit 2 ;;
esac
