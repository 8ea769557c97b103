#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv outside the repository and run it as a
# new user would there: init, demo, poll, digest. Feeds: the demo's sample server on
# 127.0.0.1 (nothing else is fetched). Used by .ci/run and tests/test_wheel.py.
#
#   scripts/check_wheel.sh            build isolated, install with its dependencies (PyPI)
#   OFFLINE=1 scripts/check_wheel.sh  build with .venv's setuptools, reuse .venv's
#                                     dependencies (no index): what the test runs
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/chipwatch-wheel.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== build the wheel"
if [ "${OFFLINE:-0}" = 1 ]; then
  "$repo/.venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation \
    -w "$work/dist" "$repo"
else
  "$repo/.venv/bin/python" -m pip wheel --quiet --no-deps -w "$work/dist" "$repo"
fi
wheel=$(ls "$work"/dist/chipwatch-*.whl)

echo "== install $(basename "$wheel") into a fresh venv in $work"
"$python" -m venv "$work/venv"
if [ "${OFFLINE:-0}" = 1 ]; then
  "$work/venv/bin/python" -m pip install --quiet --no-index --no-deps "$wheel"
  # The dependencies of the project venv, after the wheel's own site-packages: a plain
  # path line, so .venv's editable-install hooks are not run and chipwatch is the wheel.
  deps=$("$repo/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  echo "$deps" > "$site/zz-chipwatch-deps.pth"
else
  "$work/venv/bin/python" -m pip install --quiet -c "$repo/constraints.txt" "$wheel"
fi

# A new user: own home folders, a working folder without any config/ or data/.
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_DATA_HOME="$work/home/.local/share"
mkdir -p "$HOME" "$work/cwd"
cd "$work/cwd"
for name in $(env | grep -o '^CHIPWATCH_[A-Z_]*' || true); do
  case "$name" in CHIPWATCH_CLASSIFY_CACHE_DIR|CHIPWATCH_CACHE_DIR) ;; *) unset "$name" ;; esac
done
cw="$work/venv/bin/chipwatch"

echo "== chipwatch --version"
"$cw" --version
"$work/venv/bin/python" -c 'import chipwatch, sys; p = chipwatch.__file__; print("imported from", p); sys.exit(0 if p.startswith(sys.argv[1]) else 1)' "$work/venv"

echo "== chipwatch init"
"$cw" init
test -f "$XDG_CONFIG_HOME/chipwatch/chipwatch.toml"
test -f "$XDG_DATA_HOME/chipwatch/chipwatch.sqlite3"
if "$cw" init 2>/dev/null; then echo "init overwrote without --force" >&2; exit 1; fi

echo "== chipwatch demo"
"$cw" demo

# The copied config lists real sources; poll only the loopback sample feeds.
"$work/venv/bin/python" - "$XDG_CONFIG_HOME/chipwatch/chipwatch.toml" <<'PY'
import sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
open(path, "w", encoding="utf-8").write(text.split("[[sources]]", 1)[0])
PY
export CHIPWATCH_FETCH_ALLOW_PRIVATE_NETWORKS=true
"$work/venv/bin/python" -m chipwatch.demo.server > "$work/feeds.txt" &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/feeds.txt" ] && break; sleep 0.1; done
while read -r url; do "$cw" feeds add "$url"; done < "$work/feeds.txt"

echo "== chipwatch poll"
"$cw" poll
echo "== chipwatch digest"
"$cw" digest
echo "== chipwatch feeds status"
"$cw" feeds status
echo "wheel check: ok"
